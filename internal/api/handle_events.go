package api

import (
	"encoding/json"
	"net/http"
)

// eventBuffer is how many events a slow `lbctl events` may fall behind
// before it is told it lost some.
const eventBuffer = 256

// streamEvents sends events as newline-delimited JSON, one flush per
// event, until the client goes away or the server stops.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	bus := s.backend.Events()
	if bus == nil {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Message: "no event stream"})
		return
	}
	// Subscribe before replaying, so nothing falls between the two.
	sub := bus.Subscribe(eventBuffer)
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if v := r.URL.Query().Get("recent"); v == "1" || v == "true" {
		for _, ev := range bus.Recent() {
			if enc.Encode(ev) != nil {
				return
			}
		}
	}
	if rc.Flush() != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if enc.Encode(ev) != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
