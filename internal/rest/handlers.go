package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// maxKeysPerGet bounds a multi-get, as a request line bounds memcached's.
const maxKeysPerGet = 1000

// authed runs next only for a request carrying the tenant's credential or
// one of its API tokens: "Authorization: Bearer SECRET", or Basic with the
// tenant's name and the secret.
func (h *Handler) authed(next func(http.ResponseWriter, *http.Request, KV)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret, ok := credential(r, h.tenant)
		if !ok {
			h.fail(w, r, errorf(http.StatusUnauthorized, "unauthenticated", "header.Authorization", "send the tenant's credential or an API token: Authorization: Bearer TOKEN"))
			return
		}
		if !h.b.Authenticate(h.tenant, secret) {
			h.fail(w, r, errorf(http.StatusUnauthorized, "bad_credential", "header.Authorization", "the credential or token is not valid for tenant %q (expired or revoked?)", h.tenant))
			return
		}
		kv, ok := h.b.Store(h.tenant)
		if !ok {
			h.fail(w, r, errorf(http.StatusServiceUnavailable, "no_store", "", "tenant %q has no store on this node yet", h.tenant))
			return
		}
		next(w, r, kv)
	}
}

// credential extracts the secret of the Authorization header.
func credential(r *http.Request, tenant string) (string, bool) {
	a := r.Header.Get("Authorization")
	if s, ok := strings.CutPrefix(a, "Bearer "); ok && s != "" {
		return strings.TrimSpace(s), true
	}
	if user, pass, ok := r.BasicAuth(); ok && user == tenant && pass != "" {
		return pass, true
	}
	return "", false
}

// pathKey returns the request's key, checked against memcached's rules.
func (h *Handler) pathKey(r *http.Request) ([]byte, *apiError) {
	k := []byte(r.PathValue("key"))
	if err := kvs.CheckKey(k); err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_key", "path.key", "%v", err)
	}
	return k, nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, kv KV) {
	key, e := h.pathKey(r)
	if e != nil {
		h.fail(w, r, e)
		return
	}
	it, ok := kv.Get(key)
	if !ok {
		h.fail(w, r, errorf(http.StatusNotFound, "not_found", "path.key", "key %q not found", key))
		return
	}
	if accept := r.Header.Get("Accept"); strings.Contains(accept, typeBytes) && bestOf(accept, typeJSON, typeXML, typeBytes) == typeBytes {
		w.Header().Set("Content-Type", typeBytes)
		w.Header().Set("X-Lbd-Flags", strconv.FormatUint(uint64(it.Flags), 10))
		w.Header().Set("X-Lbd-Expires", strconv.FormatInt(it.Exptime, 10))
		w.Header().Set("X-Lbd-Cas", strconv.FormatUint(it.CAS, 10))
		w.Header().Set("Content-Length", strconv.Itoa(len(it.Value)))
		if r.Method != http.MethodHead {
			w.Write(it.Value)
		}
		return
	}
	h.write(w, r, http.StatusOK, itemOf(key, it, wantsXML(r)))
}

// putBody is a PUT's JSON (or XML) body.
type putBody struct {
	Value    *string `json:"value"`
	Encoding string  `json:"encoding,omitempty"`
	Flags    uint32  `json:"flags,omitempty"`
	// TTL is memcached's exptime: 0 never, up to 30 days relative
	// seconds, beyond an absolute unix time.
	TTL int32 `json:"ttl,omitempty"`
}

// bodyLimit is the largest body a write may send: the tenant's item size
// limit, grown for base64 and the JSON around it.
func bodyLimit(kv KV) int64 { return int64(kv.MaxItemSize())/3*4 + 64<<10 }

func (h *Handler) put(w http.ResponseWriter, r *http.Request, kv KV) {
	key, e := h.pathKey(r)
	if e != nil {
		h.fail(w, r, e)
		return
	}
	value, flags, ttl, e := h.readValue(w, r, kv)
	if e != nil {
		h.fail(w, r, e)
		return
	}
	it, err := kv.Set(key, value, flags, ttl)
	if errors.Is(err, kvs.ErrTooLarge) {
		h.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "too_large", "value", "value of %d bytes is over the tenant's max_item_size (%d)", len(value), kv.MaxItemSize()))
		return
	}
	if err != nil {
		h.fail(w, r, errorf(http.StatusInternalServerError, "store_failed", "", "%v", err))
		return
	}
	h.write(w, r, http.StatusOK, itemOf(key, it, wantsXML(r)))
}

// readValue reads a PUT: a JSON or XML item, or (any other content type)
// the raw bytes with flags and ttl in the query.
func (h *Handler) readValue(w http.ResponseWriter, r *http.Request, kv KV) (value []byte, flags uint32, ttl int32, e *apiError) {
	body, e := readBody(w, r, bodyLimit(kv))
	if e != nil {
		return nil, 0, 0, e
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case typeJSON, typeXML, "text/xml":
		var pb putBody
		if mt == typeJSON {
			e = decodeJSON(body, &pb)
		} else {
			var x xmlItem
			if err := xml.Unmarshal(body, &x); err != nil {
				e = errorf(http.StatusBadRequest, "bad_xml", "body", "body is not an <item>: %v", err)
			} else {
				pb.Flags, pb.TTL = x.Flags, x.TTL
				if x.Value != nil {
					pb.Value, pb.Encoding = &x.Value.Text, x.Value.Encoding
				}
			}
		}
		if e != nil {
			return nil, 0, 0, e
		}
		if pb.Value == nil {
			return nil, 0, 0, errorf(http.StatusBadRequest, "missing_field", "value", "the item has no value")
		}
		switch pb.Encoding {
		case "", "text":
			value = []byte(*pb.Value)
		case "base64":
			v, err := base64.StdEncoding.DecodeString(*pb.Value)
			if err != nil {
				return nil, 0, 0, errorf(http.StatusBadRequest, "bad_base64", "value", "value is not base64: %v", err)
			}
			value = v
		default:
			return nil, 0, 0, errorf(http.StatusBadRequest, "bad_encoding", "encoding", "encoding %q: want text or base64", pb.Encoding)
		}
		return value, pb.Flags, pb.TTL, nil
	}
	q := r.URL.Query()
	if s := q.Get("flags"); s != "" {
		f, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, 0, 0, errorf(http.StatusBadRequest, "bad_flags", "query.flags", "flags %q: want 0 to %d", s, uint32(math.MaxUint32))
		}
		flags = uint32(f)
	}
	if s := q.Get("ttl"); s != "" {
		t, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, 0, 0, errorf(http.StatusBadRequest, "bad_ttl", "query.ttl", "ttl %q: want seconds (memcached exptime)", s)
		}
		ttl = int32(t)
	}
	return body, flags, ttl, nil
}

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "body", "body of %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "body", "body is over the limit of %d bytes", limit)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_body", "body", "reading the body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes one JSON value into v, refusing unknown fields and
// trailing data, and names the field at fault.
func decodeJSON(b []byte, v any) *apiError {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return errorf(http.StatusBadRequest, "bad_json", te.Field, "field %s: %s is not a valid %s", te.Field, te.Value, te.Type)
		case errors.As(err, &se):
			return errorf(http.StatusBadRequest, "bad_json", "body", "body is not JSON: %v (at byte %d)", err, se.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return errorf(http.StatusBadRequest, "unknown_field", f, "unknown field %q", f)
		}
		return errorf(http.StatusBadRequest, "bad_json", "body", "body is not JSON: %v", err)
	}
	if d.More() {
		return errorf(http.StatusBadRequest, "bad_json", "body", "body holds more than one JSON value")
	}
	return nil
}

func (h *Handler) del(w http.ResponseWriter, r *http.Request, kv KV) {
	key, e := h.pathKey(r)
	if e != nil {
		h.fail(w, r, e)
		return
	}
	found, err := kv.Delete(key)
	if err != nil {
		h.fail(w, r, errorf(http.StatusInternalServerError, "store_failed", "", "%v", err))
		return
	}
	if !found {
		h.fail(w, r, errorf(http.StatusNotFound, "not_found", "path.key", "key %q not found", key))
		return
	}
	h.write(w, r, http.StatusOK, Deleted{Key: string(key), Deleted: true})
}

// deltaBody is incr's and decr's optional JSON body.
type deltaBody struct {
	By *uint64 `json:"by"`
}

func (h *Handler) delta(incr bool) func(http.ResponseWriter, *http.Request, KV) {
	return func(w http.ResponseWriter, r *http.Request, kv KV) {
		key, e := h.pathKey(r)
		if e != nil {
			h.fail(w, r, e)
			return
		}
		by := uint64(1)
		if s := r.URL.Query().Get("by"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				h.fail(w, r, errorf(http.StatusBadRequest, "bad_delta", "query.by", "by %q: want an unsigned 64-bit number", s))
				return
			}
			by = v
		}
		body, e := readBody(w, r, 4<<10)
		if e != nil {
			h.fail(w, r, e)
			return
		}
		if len(bytes.TrimSpace(body)) > 0 {
			var db deltaBody
			if e := decodeJSON(body, &db); e != nil {
				h.fail(w, r, e)
				return
			}
			if db.By != nil {
				by = *db.By
			}
		}
		v, err := kv.Delta(key, incr, by)
		switch {
		case errors.Is(err, kvs.ErrNotFound):
			h.fail(w, r, errorf(http.StatusNotFound, "not_found", "path.key", "key %q not found", key))
		case errors.Is(err, kvs.ErrNonNumeric):
			h.fail(w, r, errorf(http.StatusConflict, "non_numeric", "path.key", "key %q does not hold a decimal number", key))
		case err != nil:
			h.fail(w, r, errorf(http.StatusInternalServerError, "store_failed", "", "%v", err))
		default:
			h.write(w, r, http.StatusOK, Counter{Key: string(key), Value: v})
		}
	}
}

// mgetBody is POST /v1/mget's body.
type mgetBody struct {
	Keys []string `json:"keys"`
}

func (h *Handler) multiGet(w http.ResponseWriter, r *http.Request, kv KV) {
	var keys []string
	field := "query.key"
	if r.Method == http.MethodPost {
		body, e := readBody(w, r, maxKeysPerGet*(kvs.KeyMaxLength+8)+1024)
		if e != nil {
			h.fail(w, r, e)
			return
		}
		var mb mgetBody
		if e := decodeJSON(body, &mb); e != nil {
			h.fail(w, r, e)
			return
		}
		keys, field = mb.Keys, "keys"
	} else {
		keys = r.URL.Query()["key"]
	}
	if len(keys) == 0 {
		h.fail(w, r, errorf(http.StatusBadRequest, "missing_field", field, "no keys asked for"))
		return
	}
	if len(keys) > maxKeysPerGet {
		h.fail(w, r, errorf(http.StatusBadRequest, "too_many_keys", field, "%d keys, at most %d per request", len(keys), maxKeysPerGet))
		return
	}
	out := Items{Items: []Item{}, Missing: []string{}}
	xmlOut := wantsXML(r)
	for i, k := range keys {
		if err := kvs.CheckKey([]byte(k)); err != nil {
			h.fail(w, r, errorf(http.StatusBadRequest, "bad_key", fmt.Sprintf("%s[%d]", field, i), "%v", err))
			return
		}
	}
	for _, k := range keys {
		if it, ok := kv.Get([]byte(k)); ok {
			out.Items = append(out.Items, itemOf([]byte(k), it, xmlOut))
		} else {
			out.Missing = append(out.Missing, k)
		}
	}
	h.write(w, r, http.StatusOK, out)
}
