package kvs

import (
	"bufio"
	"bytes"
	"slices"
	"testing"
)

func TestDataLen(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int
		ok   bool
	}{
		{"VALUE k 0 5\r\n", 5, true},
		{"VALUE k 12 0 99\r\n", 0, true}, // gets: the cas unique follows
		{"VALUE k 1 123 77\r\n", 123, true},
		{"VALUE k\xc2\xa0x 0 7\r\n", 7, true}, // a key byte that is not a space
		{"VALUE k 0\r\n", 0, false},
		{"VALUE k 0 -1\r\n", 0, false},
		{"VALUE k 0 5x\r\n", 0, false},
		{"VALUE k 0 999999999999999999999\r\n", 0, false},
		{"VA 10 f1 t-1\r\n", 10, true},
		{"VA 3\r\n", 3, true},
		{"VA \r\n", 0, false},
		{"HD\r\n", 0, false},
		{"END\r\n", 0, false},
	} {
		n, ok := dataLen([]byte(tc.line))
		if n != tc.n || ok != tc.ok {
			t.Errorf("dataLen(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func BenchmarkDataLen(b *testing.B) {
	line := []byte("VALUE memcload:1234 0 64\r\n")
	b.ReportAllocs()
	for b.Loop() {
		dataLen(line)
	}
}

// splitPeerReplies splits a stream into replies with peerReplyEnd, fed a
// chunk of at most chunk bytes at a time as a loop reads it; rest is what
// is left incomplete.
func splitPeerReplies(stream []byte, chunk int) (replies []string, rest []byte) {
	var buf []byte
	for len(stream) > 0 || len(buf) > 0 {
		n := min(chunk, len(stream))
		buf = append(buf, stream[:n]...)
		stream = stream[n:]
		for {
			rn, end, ok := peerReplyEnd(buf)
			if !ok {
				break
			}
			replies = append(replies, string(buf[:rn]))
			buf = buf[end:]
		}
		if n == 0 {
			break
		}
	}
	return replies, buf
}

// readPeerReplies reads a stream's replies with readPeerReply.
func readPeerReplies(stream []byte) []string {
	br := bufio.NewReaderSize(bytes.NewReader(stream), 16)
	var replies []string
	for {
		r, err := readPeerReply(br)
		if err != nil {
			return replies
		}
		replies = append(replies, string(r))
	}
}

func TestPeerReplyEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		want   []string
		rest   string
	}{
		{"empty reply", "MN\r\n", []string{""}, ""},
		{"stored", "STORED\r\nMN\r\n", []string{"STORED\r\n"}, ""},
		{"noreply then reply", "MN\r\nEND\r\nMN\r\n", []string{"", "END\r\n"}, ""},
		{"value holding MN", "VALUE k 0 4\r\nMN\r\n\r\nEND\r\nMN\r\n", []string{"VALUE k 0 4\r\nMN\r\n\r\nEND\r\n"}, ""},
		{"meta value", "VA 2 f1\r\nhi\r\nMN\r\n", []string{"VA 2 f1\r\nhi\r\n"}, ""},
		{"incomplete data", "VALUE k 0 10\r\nabc", nil, "VALUE k 0 10\r\nabc"},
		{"incomplete line", "STORED\r\nMN\r\nEN", []string{"STORED\r\n"}, "EN"},
		{"error", "SERVER_ERROR lbd: node st2: timed out\r\nMN\r\n", []string{"SERVER_ERROR lbd: node st2: timed out\r\n"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 1 << 20} {
				got, rest := splitPeerReplies([]byte(tc.stream), chunk)
				if !slices.Equal(got, tc.want) || string(rest) != tc.rest {
					t.Errorf("chunks of %d: replies %q, rest %q; want %q, %q", chunk, got, rest, tc.want, tc.rest)
				}
			}
		})
	}
}

// FuzzPeerReplyEnd checks that the event loop's reply splitter finds the
// same replies in a stream, however it arrives, as the reader goroutine's.
func FuzzPeerReplyEnd(f *testing.F) {
	f.Add([]byte("VALUE k 0 4\r\nMN\r\n\r\nEND\r\nMN\r\nSTORED\r\nMN\r\n"), 3)
	f.Add([]byte("VA 2 f1\r\nhi\r\nMN\r\nMN\r\nHD\r\nMN\r\n"), 1)
	f.Add([]byte("VALUE k 0 99999999\r\nMN\r\n"), 7)
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		got, _ := splitPeerReplies(stream, chunk)
		want := readPeerReplies(stream)
		if !slices.Equal(got, want) {
			t.Fatalf("loop splitter %q, reader %q", got, want)
		}
	})
}
