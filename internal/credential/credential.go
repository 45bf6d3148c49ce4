// Package credential keeps the secrets that open the panel and the data
// API: one credential per tenant and one for the operator (issued by
// `lbctl tenant credentials T` and `lbctl operator credentials`), and any
// number of API tokens per tenant. Only argon2id hashes are kept; the
// secret is shown once, when it is issued.
//
// A secret names its entry ("lbd_" + id + "_" + random), so a check hashes
// once, against one entry. A verified secret is remembered (by its SHA-256)
// for a few minutes, so that the data API does not pay argon2id on every
// request; issuing or revoking forgets them all.
package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Kind is what a secret is.
type Kind string

// The kinds of secret.
const (
	// Login is a tenant's (or the operator's) credential: one at a time;
	// issuing a new one revokes the old.
	Login Kind = "credential"
	// Token is a tenant's API token, for the data API only; many.
	Token Kind = "token"
)

// Operator is the subject of the operator's credential (no tenant has
// an empty name).
const Operator = ""

// Entry is one issued secret, without the secret.
type Entry struct {
	// Subject is the tenant, or Operator.
	Subject string    `json:"subject"`
	Kind    Kind      `json:"kind"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Hash is argon2id(secret, Salt) with Params.
	Hash   []byte `json:"hash"`
	Salt   []byte `json:"salt"`
	Params Params `json:"params"`
}

// Params are argon2id's cost parameters (OWASP's minimum by default:
// 19 MiB, 2 passes, 1 lane).
type Params struct {
	Time    uint32 `json:"time"`
	MemKiB  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
}

// DefaultParams are the parameters new secrets are hashed with.
var DefaultParams = Params{Time: 2, MemKiB: 19 << 10, Threads: 1}

// cacheTTL is how long a verified secret is remembered.
const cacheTTL = 5 * time.Minute

// Persist stores the entries (a node's own file).
type Persist func(entries []Entry) error

// SaveSubject stores one subject's entries in shared state, the
// cluster's: before are the subject's entries as this store knew them,
// after what they become (none: the subject has no secret left). As
// another node may have changed them meanwhile, it stores Merge(before,
// after, the shared ones) and returns what it stored and the index of the
// write. Only that subject is written.
type SaveSubject func(subject string, before, after []Entry) (saved []Entry, index uint64, err error)

// Merge is a subject's entries after a change from before to after made
// on a view that may be stale, given current, the shared entries now: the
// change, plus what was added elsewhere meanwhile, minus what was revoked
// elsewhere meanwhile. A Login issued by the change replaces any other.
func Merge(before, after, current []Entry) []Entry {
	has := func(es []Entry, id string) bool {
		return slices.ContainsFunc(es, func(e Entry) bool { return e.ID == id })
	}
	newLogin := slices.ContainsFunc(after, func(e Entry) bool { return e.Kind == Login && !has(before, e.ID) })
	var out []Entry
	for _, e := range after {
		if has(before, e.ID) && !has(current, e.ID) {
			continue // revoked elsewhere meanwhile
		}
		out = append(out, e)
	}
	for _, e := range current {
		if has(before, e.ID) || has(after, e.ID) || (newLogin && e.Kind == Login) {
			continue
		}
		out = append(out, e) // added elsewhere meanwhile
	}
	return out
}

// Store holds the entries. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	entries []Entry
	persist Persist
	// save, once set (Share), replaces persist: the entries live in shared
	// state, and index is the state's index they are as of.
	save   SaveSubject
	index  uint64
	params Params
	now    func() time.Time
	cache  map[[32]byte]cached
	// hashing holds the secrets being hashed now: a burst of requests with
	// one new secret (a client opening many connections) hashes it once.
	hashing map[[32]byte]chan struct{}
}

type cached struct {
	subject string
	until   time.Time
}

// New returns a store holding entries, saving changes through persist.
func New(entries []Entry, persist Persist, params Params) *Store {
	if params == (Params{}) {
		params = DefaultParams
	}
	return &Store{entries: slices.Clone(entries), persist: persist, params: params, now: time.Now, cache: map[[32]byte]cached{}, hashing: map[[32]byte]chan struct{}{}}
}

// Entries returns every entry (hashes included: for persisting).
func (s *Store) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries)
}

// Issue makes a new secret of kind for subject, stores its hash and
// returns the secret and its entry. A new Login replaces the subject's
// previous one. Nothing changes if persisting fails.
func (s *Store) Issue(subject string, kind Kind) (string, Entry, error) {
	if kind != Login && kind != Token {
		return "", Entry{}, fmt.Errorf("credential: unknown kind %q", kind)
	}
	if kind == Token && subject == Operator {
		return "", Entry{}, errors.New("credential: the operator has no API tokens")
	}
	var id [4]byte
	var raw [32]byte
	var salt [16]byte
	for _, b := range [][]byte{id[:], raw[:], salt[:]} {
		if _, err := rand.Read(b); err != nil {
			return "", Entry{}, fmt.Errorf("credential: random: %w", err)
		}
	}
	e := Entry{Subject: subject, Kind: kind, ID: hex.EncodeToString(id[:]), Created: s.now().UTC(), Salt: salt[:], Params: s.params}
	secret := "lbd_" + e.ID + "_" + base64.RawURLEncoding.EncodeToString(raw[:])
	e.Hash = hash(secret, e.Salt, e.Params)
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.Clone(s.entries)
	if kind == Login {
		next = slices.DeleteFunc(next, func(x Entry) bool { return x.Subject == subject && x.Kind == Login })
	}
	next = append(next, e)
	if err := s.store(subject, next); err != nil {
		return "", Entry{}, err
	}
	return secret, e, nil
}

// Revoke removes subject's entry id (a token or the credential).
func (s *Store) Revoke(subject, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(s.entries), func(x Entry) bool { return x.Subject == subject && x.ID == id })
	if len(next) == len(s.entries) {
		return fmt.Errorf("credential: %s has no secret %q", subjectName(subject), id)
	}
	return s.store(subject, next)
}

// RevokeSubject removes every secret of subject (a tenant removed).
func (s *Store) RevokeSubject(subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(s.entries), func(x Entry) bool { return x.Subject == subject })
	if len(next) == len(s.entries) {
		return nil
	}
	return s.store(subject, next)
}

// store saves next, in which only subject's entries changed, and makes it
// the entries. Called with s.mu held.
func (s *Store) store(subject string, next []Entry) error {
	if s.save != nil {
		saved, idx, err := s.save(subject, Of(s.entries, subject), Of(next, subject))
		if err != nil {
			return fmt.Errorf("credential: save: %w", err)
		}
		next = append(slices.DeleteFunc(next, func(e Entry) bool { return e.Subject == subject }), saved...)
		s.index = max(s.index, idx)
	} else if s.persist != nil {
		if err := s.persist(next); err != nil {
			return fmt.Errorf("credential: save: %w", err)
		}
	}
	s.entries = next
	clear(s.cache)
	return nil
}

// Of returns subject's entries among entries.
func Of(entries []Entry, subject string) []Entry {
	var out []Entry
	for _, e := range entries {
		if e.Subject == subject {
			out = append(out, e)
		}
	}
	return out
}

// Share makes the store keep its entries in shared state from now on:
// Issue and the revocations write one subject through save, and Replace
// brings in the shared state's entries (as of index), which replace the
// ones held.
func (s *Store) Share(save SaveSubject, index uint64, entries []Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.save, s.persist = save, nil
	s.index = 0
	s.replace(index, entries)
}

// Shared reports whether the entries are kept in shared state (Share).
func (s *Store) Shared() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.save != nil
}

// Replace sets the entries to the shared state's as of index; older than
// what the store holds (a write of its own it has seen applied), it is
// ignored. Verified secrets stay remembered unless the entries changed.
func (s *Store) Replace(index uint64, entries []Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(index, entries)
}

func (s *Store) replace(index uint64, entries []Entry) {
	if index < s.index {
		return
	}
	s.index = index
	if slices.EqualFunc(s.entries, entries, sameEntry) {
		return
	}
	s.entries = slices.Clone(entries)
	clear(s.cache)
}

func sameEntry(a, b Entry) bool {
	return a.Subject == b.Subject && a.Kind == b.Kind && a.ID == b.ID && a.Created.Equal(b.Created) &&
		string(a.Hash) == string(b.Hash) && string(a.Salt) == string(b.Salt) && a.Params == b.Params
}

// Verify reports whether secret is one of subject's secrets of the kinds
// given (any kind when none is given).
func (s *Store) Verify(subject, secret string, kinds ...Kind) bool {
	id, ok := idOf(secret)
	if !ok {
		return false
	}
	s.mu.Lock()
	i := slices.IndexFunc(s.entries, func(x Entry) bool {
		return x.ID == id && x.Subject == subject && (len(kinds) == 0 || slices.Contains(kinds, x.Kind))
	})
	if i < 0 {
		s.mu.Unlock()
		return false
	}
	e := s.entries[i]
	key := sha256.Sum256([]byte(secret))
	for {
		if c, ok := s.cache[key]; ok && c.subject == subject && s.now().Before(c.until) {
			s.mu.Unlock()
			return true
		}
		wait, busy := s.hashing[key]
		if !busy {
			break
		}
		s.mu.Unlock()
		<-wait
		s.mu.Lock()
	}
	done := make(chan struct{})
	s.hashing[key] = done
	s.mu.Unlock()
	// Hash outside the lock: argon2id takes tens of milliseconds.
	ok = subtle.ConstantTimeCompare(hash(secret, e.Salt, e.Params), e.Hash) == 1
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hashing, key)
	close(done)
	if !ok {
		return false
	}
	// Still there (not revoked while hashing)?
	if slices.IndexFunc(s.entries, func(x Entry) bool { return x.ID == id && x.Subject == subject }) < 0 {
		return false
	}
	if len(s.cache) > 10000 {
		clear(s.cache)
	}
	s.cache[key] = cached{subject: subject, until: s.now().Add(cacheTTL)}
	return true
}

// Verified reports whether secret is subject's and verified already:
// Verify would then answer at once, without hashing (an event loop may
// call it in place).
func (s *Store) Verified(subject, secret string) bool {
	key := sha256.Sum256([]byte(secret))
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[key]
	return ok && c.subject == subject && s.now().Before(c.until)
}

// idOf extracts the entry id from a secret of the form lbd_ID_RANDOM.
func idOf(secret string) (string, bool) {
	rest, ok := strings.CutPrefix(secret, "lbd_")
	if !ok || len(rest) < 10 || rest[8] != '_' {
		return "", false
	}
	return rest[:8], true
}

func hash(secret string, salt []byte, p Params) []byte {
	return argon2.IDKey([]byte(secret), salt, p.Time, p.MemKiB, p.Threads, 32)
}

func subjectName(s string) string {
	if s == Operator {
		return "the operator"
	}
	return "tenant " + s
}
