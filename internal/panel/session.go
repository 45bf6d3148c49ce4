package panel

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Cookie names.
const (
	sessionCookie = "lbd_session"
	// loginCookie carries the login form's CSRF token before there is a
	// session (double submit).
	loginCookie = "lbd_login"
)

// session is one logged-in browser.
type session struct {
	id string
	// tenant is the tenant logged in; operator is true for the operator
	// (who may see every tenant).
	tenant   string
	operator bool
	csrf     string
	expires  time.Time
}

// mayView reports whether the session may see tenant's pages.
func (s *session) mayView(tenant string) bool { return s.operator || s.tenant == tenant }

// who names the session's user.
func (s *session) who() string {
	if s.operator {
		return "operator"
	}
	return s.tenant
}

// sessions holds the live sessions in memory: a restart logs everybody
// out, which is the safe way round.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
	ttl time.Duration
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, now: now, ttl: ttl}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("panel: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// start makes a new session (a fresh id on every login: no fixation).
func (ss *sessions) start(tenant string, operator bool) *session {
	s := &session{id: randomToken(), tenant: tenant, operator: operator, csrf: randomToken(), expires: ss.now().Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for id, o := range ss.m {
		if now.After(o.expires) {
			delete(ss.m, id)
		}
	}
	ss.m[s.id] = s
	return s
}

// get returns the live session of id and extends it; expired tells a
// session that existed but timed out from one that never did.
func (ss *sessions) get(id string) (s *session, expired bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		return nil, false
	}
	if ss.now().After(s.expires) {
		delete(ss.m, id)
		return nil, true
	}
	s.expires = ss.now().Add(ss.ttl)
	c := *s
	return &c, false
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// setCookie sets a cookie the way every panel cookie is set.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// authed runs next with the request's session; without one it shows the
// login page (401), saying so when the session expired. A JSON endpoint
// gets a JSON error instead.
func (s *Server) authed(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		expired := false
		if c, err := r.Cookie(sessionCookie); err == nil {
			sess, expired = s.sessions.get(c.Value)
		}
		if sess == nil {
			msg := "Log in to see this page."
			if expired {
				msg = "Your session has expired. Log in again."
			}
			if strings.HasPrefix(r.URL.Path, "/api/") {
				code := "unauthenticated"
				if expired {
					code = "session_expired"
				}
				writeJSONError(w, http.StatusUnauthorized, code, msg)
				return
			}
			s.renderLogin(w, r, http.StatusUnauthorized, msg, "")
			return
		}
		if r.Method == http.MethodPost && !sameToken(r.PostFormValue("csrf"), sess.csrf) {
			s.errorPageAs(w, r, sess, http.StatusForbidden, "Form expired", "This form was not sent from the page lbd served in this session (its CSRF token does not match). Go back, reload the page and send it again.")
			return
		}
		if t := r.PathValue("tenant"); t != "" && !sess.mayView(t) {
			s.errorPageAs(w, r, sess, http.StatusForbidden, "Not your tenant", "You are logged in as "+sess.who()+" and may see only that tenant's pages.")
			return
		}
		next(w, r, sess)
	}
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// limiter is a token bucket per source address for login attempts.
type limiter struct {
	mu    sync.Mutex
	now   func() time.Time
	burst int
	every time.Duration
	b     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(now func() time.Time, burst int, every time.Duration) *limiter {
	return &limiter{now: now, burst: burst, every: every, b: map[string]*bucket{}}
}

// allow takes a token for addr; when there is none it returns how long
// until there is one.
func (l *limiter) allow(addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.b[addr]
	if b == nil {
		if len(l.b) > 100000 {
			clear(l.b)
		}
		b = &bucket{tokens: float64(l.burst), last: now}
		l.b[addr] = b
	}
	b.tokens = min(float64(l.burst), b.tokens+now.Sub(b.last).Seconds()/l.every.Seconds())
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(l.every))
	}
	b.tokens--
	return true, 0
}

// sourceOf is the client's address (the TCP peer's; no header is trusted).
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
