package api

import "net/http"

// fileName is the name a posted configuration is called in errors.
func fileName(r *http.Request) string {
	if f := r.URL.Query().Get("file"); f != "" && len(f) <= 4096 {
		return f
	}
	return "request"
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, st)
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	data, err := readConfig(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.backend.Validate(r.Context(), data, fileName(r)); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	data, err := readConfig(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	d, err := s.backend.Diff(r.Context(), data, fileName(r))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, normDiff(d))
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	data, err := readConfig(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	d, err := s.backend.Apply(r.Context(), data, fileName(r))
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("configuration applied through the API", "file", fileName(r), "changes", len(d.Changes))
	writeJSON(w, normDiff(d))
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if err := s.backend.Reload(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, OK{OK: true})
}

// readConfig reads a posted configuration file; an empty one is refused
// before the backend sees it.
func readConfig(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := readBody(w, r, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, invalidf("empty configuration")
	}
	return data, nil
}

// normDiff makes "no changes" an empty list rather than null.
func normDiff(d Diff) Diff {
	if d.Changes == nil {
		d.Changes = []Change{}
	}
	return d
}
