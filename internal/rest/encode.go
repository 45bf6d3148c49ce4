package rest

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lbd-project/lbd/pkg/kvs"
)

// The media types the API speaks.
const (
	typeJSON  = "application/json"
	typeXML   = "application/xml"
	typeBytes = "application/octet-stream"
)

// Item is a key's value as the API shows it. Value is the data as text when
// it is valid UTF-8 (and, for XML, only characters XML can carry),
// otherwise base64 with Encoding "base64".
type Item struct {
	Key      string `json:"key" xml:"key"`
	Value    string `json:"value" xml:"value"`
	Encoding string `json:"encoding" xml:"encoding,attr,omitempty"`
	Flags    uint32 `json:"flags" xml:"flags"`
	// Expires is the absolute expiry in unix seconds; 0 means never.
	Expires int64  `json:"expires" xml:"expires"`
	CAS     uint64 `json:"cas" xml:"cas"`
}

// xmlValue is a value in XML: <value encoding="base64">...</value>.
type xmlValue struct {
	Encoding string `xml:"encoding,attr,omitempty"`
	Text     string `xml:",chardata"`
}

// xmlItem is Item's XML form.
type xmlItem struct {
	XMLName struct{}  `xml:"item"`
	Key     string    `xml:"key,omitempty"`
	Value   *xmlValue `xml:"value"`
	Flags   uint32    `xml:"flags"`
	Expires int64     `xml:"expires"`
	CAS     uint64    `xml:"cas"`
	TTL     int32     `xml:"ttl,omitempty"`
}

// MarshalXML writes the item with the encoding on its <value>.
func (it Item) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return e.Encode(xmlItem{Key: it.Key, Value: &xmlValue{Encoding: it.Encoding, Text: it.Value}, Flags: it.Flags, Expires: it.Expires, CAS: it.CAS})
}

// UnmarshalXML reads the form MarshalXML writes.
func (it *Item) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var x xmlItem
	if err := d.DecodeElement(&x, &start); err != nil {
		return err
	}
	*it = Item{Key: x.Key, Flags: x.Flags, Expires: x.Expires, CAS: x.CAS}
	if x.Value != nil {
		it.Value, it.Encoding = x.Value.Text, x.Value.Encoding
	}
	return nil
}

// Items answers a multi-get: the items found, in request order, and the
// keys that were not.
type Items struct {
	XMLName struct{} `json:"-" xml:"items"`
	Items   []Item   `json:"items" xml:"item"`
	Missing []string `json:"missing" xml:"missing>key"`
}

// Counter answers incr and decr.
type Counter struct {
	XMLName struct{} `json:"-" xml:"counter"`
	Key     string   `json:"key" xml:"key"`
	Value   uint64   `json:"value" xml:"value"`
}

// Deleted answers a delete.
type Deleted struct {
	XMLName struct{} `json:"-" xml:"deleted"`
	Key     string   `json:"key" xml:"key"`
	Deleted bool     `json:"deleted" xml:"ok"`
}

// itemOf renders a stored item; forXML picks the stricter text test.
func itemOf(key []byte, it kvs.Item, forXML bool) Item {
	out := Item{Key: string(key), Flags: it.Flags, Expires: it.Exptime, CAS: it.CAS, Encoding: "text"}
	if isText(it.Value, forXML) {
		out.Value = string(it.Value)
	} else {
		out.Value, out.Encoding = base64.StdEncoding.EncodeToString(it.Value), "base64"
	}
	return out
}

// isText reports whether b can travel as a JSON (or XML) string unchanged.
func isText(b []byte, forXML bool) bool {
	if !utf8.Valid(b) {
		return false
	}
	if !forXML {
		return true
	}
	for _, r := range string(b) {
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return false
		}
	}
	// encoding/xml turns "\r" into "&#xD;", which reads back as "\r": fine.
	return true
}

// wantsXML reports whether the client prefers XML to JSON (okuyama's API
// answered both).
func wantsXML(r *http.Request) bool {
	return bestOf(r.Header.Get("Accept"), typeJSON, typeXML) == typeXML
}

// bestOf returns which of the offered types the Accept header prefers;
// the first offered on a tie or when nothing matches.
func bestOf(accept string, offers ...string) string {
	// The common cases without parsing.
	switch accept {
	case "", "*/*":
		return offers[0]
	}
	for _, o := range offers {
		if accept == o {
			return o
		}
	}
	best, bestQ := offers[0], -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				q = f
			}
		}
		for _, o := range offers {
			if (mt == o || mt == "*/*" || mt == strings.Split(o, "/")[0]+"/*") && q > bestQ && q > 0 {
				if mt == o || bestQ < 0 {
					best, bestQ = o, q
				}
			}
		}
	}
	return best
}

// write encodes v as JSON or XML with the status.
func (h *Handler) write(w http.ResponseWriter, r *http.Request, status int, v any) {
	var body []byte
	var err error
	if wantsXML(r) {
		w.Header().Set("Content-Type", typeXML+"; charset=utf-8")
		body, err = xml.Marshal(v)
		if err == nil {
			body = append([]byte(xml.Header), body...)
		}
	} else {
		w.Header().Set("Content-Type", typeJSON)
		body, err = json.Marshal(v)
	}
	if err != nil {
		h.log.Error("rest: encode answer", "error", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(append(body, '\n'))
	}
}
