package credential

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var fast = Params{Time: 1, MemKiB: 64, Threads: 1}

func TestIssueVerifyRevoke(t *testing.T) {
	var saved []Entry
	s := New(nil, func(e []Entry) error { saved = e; return nil }, fast)
	login, e, err := s.Issue("user1", Login)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(login, "lbd_"+e.ID+"_") || len(saved) != 1 {
		t.Fatalf("secret %q, saved %d", login, len(saved))
	}
	if strings.Contains(string(saved[0].Hash), login) || len(saved[0].Hash) != 32 {
		t.Error("the secret is stored, not its hash")
	}
	tok, _, _ := s.Issue("user1", Token)
	op, _, _ := s.Issue(Operator, Login)
	for _, tc := range []struct {
		subject, secret string
		kinds           []Kind
		want            bool
	}{
		{"user1", login, nil, true},
		{"user1", tok, nil, true},
		{"user1", tok, []Kind{Login}, false}, // a token does not log in to the panel
		{"user2", login, nil, false},         // another tenant's name
		{Operator, login, nil, false},
		{Operator, op, []Kind{Login}, true},
		{"user1", op, nil, false},
		{"user1", login[:len(login)-1] + "x", nil, false},
		{"user1", "", nil, false},
		{"user1", "lbd_", nil, false},
	} {
		for range 2 { // the second time from the cache
			if got := s.Verify(tc.subject, tc.secret, tc.kinds...); got != tc.want {
				t.Errorf("Verify(%q, %q, %v) = %v", tc.subject, tc.secret, tc.kinds, got)
			}
		}
	}
	// A new credential revokes the old one, also from the cache.
	login2, _, _ := s.Issue("user1", Login)
	if s.Verify("user1", login) || !s.Verify("user1", login2) || !s.Verify("user1", tok) {
		t.Error("reissue: old credential still valid or new one not")
	}
	if err := s.RevokeSubject("user1"); err != nil || s.Verify("user1", login2) || s.Verify("user1", tok) {
		t.Errorf("revoke subject: %v", err)
	}
	// The store reloads from what it saved.
	s2 := New(saved, nil, fast)
	if !s2.Verify(Operator, op) {
		t.Error("reloaded store refuses the operator")
	}
}

func TestPersistFailureChangesNothing(t *testing.T) {
	fail := false
	s := New(nil, func([]Entry) error {
		if fail {
			return errors.New("disk full")
		}
		return nil
	}, fast)
	old, _, _ := s.Issue("t", Login)
	fail = true
	if _, _, err := s.Issue("t", Login); err == nil {
		t.Fatal("issue succeeded without saving")
	}
	if !s.Verify("t", old) || len(s.Entries()) != 1 {
		t.Error("a failed issue changed the store")
	}
}

// Many requests with one new secret at once: all verify, none waits for
// a lock held across a hash.
func TestVerifyConcurrent(t *testing.T) {
	s := New(nil, nil, fast)
	sec, _, _ := s.Issue("t", Token)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 32 {
		wg.Go(func() {
			if !s.Verify("t", sec) || s.Verify("t", sec+"x") {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d goroutines got a wrong answer", bad.Load())
	}
}

// Two stores sharing one state (two nodes of a cluster): a secret issued
// on one verifies on the other once its state is replaced; each write
// names one subject only, so a store that has not heard of another's
// write does not undo it; a replace older than a store's own write is
// ignored.
func TestShared(t *testing.T) {
	shared := map[string][]Entry{}
	var index uint64
	state := func() (uint64, []Entry) {
		var all []Entry
		for _, s := range []string{Operator, "a", "b"} {
			all = append(all, shared[s]...)
		}
		return index, all
	}
	save := func(subject string, before, after []Entry) ([]Entry, uint64, error) {
		index++
		entries := Merge(before, after, shared[subject])
		if len(entries) == 0 {
			delete(shared, subject)
		} else {
			shared[subject] = entries
		}
		return entries, index, nil
	}
	// Node A had a file with the operator's credential: imported.
	a := New(nil, nil, fast)
	op, _, _ := a.Issue(Operator, Login)
	for _, e := range a.Entries() {
		save(e.Subject, nil, []Entry{e})
	}
	i, all := state()
	a.Share(save, i, all)
	b := New(nil, nil, fast)
	b.Share(save, 0, nil)
	if b.Verify(Operator, op) {
		t.Fatal("b verifies before it saw the state")
	}
	b.Replace(state())
	if !b.Verify(Operator, op) {
		t.Fatal("b refuses the operator's credential issued on a")
	}
	secA, _, err := a.Issue("a", Login)
	if err != nil {
		t.Fatal(err)
	}
	// b has not seen a's write: issuing for b keeps a's.
	secB, _, _ := b.Issue("b", Login)
	a.Replace(state())
	b.Replace(state())
	for _, s := range []*Store{a, b} {
		if !s.Verify("a", secA) || !s.Verify("b", secB) || !s.Verify(Operator, op) {
			t.Error("a secret issued on one store does not verify on both")
		}
	}
	// An old state does not undo b's own newer write.
	old := index
	b.Issue("a", Login) // revokes secA
	b.Replace(old-1, nil)
	if b.Verify("a", secA) || len(b.Entries()) != 3 {
		t.Errorf("an older state replaced b's newer write: %d entries", len(b.Entries()))
	}
	// Revoking a subject deletes its entries from the shared state.
	if err := a.RevokeSubject("b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := shared["b"]; ok {
		t.Error("b's entries still shared after revoking b")
	}
	b.Replace(state())
	if b.Verify("b", secB) {
		t.Error("a revoked secret still verifies on another store")
	}
}

// Two nodes change one subject's secrets at once, each on its own view:
// neither undoes the other's change.
func TestMerge(t *testing.T) {
	e := func(id string, k Kind) Entry { return Entry{Subject: "a", ID: id, Kind: k} }
	ids := func(es []Entry) string {
		var out []string
		for _, x := range es {
			out = append(out, x.ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name                   string
		before, after, current []Entry
		want                   string
	}{
		{"no concurrent change", []Entry{e("L1", Login)}, []Entry{e("L1", Login), e("T1", Token)}, []Entry{e("L1", Login)}, "L1 T1"},
		{"a token issued elsewhere stays", []Entry{e("L1", Login)}, []Entry{e("L1", Login), e("T1", Token)}, []Entry{e("L1", Login), e("T2", Token)}, "L1 T1 T2"},
		{"a token revoked elsewhere stays revoked", []Entry{e("L1", Login), e("T1", Token)}, []Entry{e("L1", Login), e("T1", Token), e("T2", Token)}, []Entry{e("L1", Login)}, "L1 T2"},
		{"our new login replaces one issued elsewhere", []Entry{e("L1", Login)}, []Entry{e("L2", Login)}, []Entry{e("L3", Login)}, "L2"},
		{"a revocation keeps what was added elsewhere", []Entry{e("T1", Token)}, nil, []Entry{e("T1", Token), e("T2", Token)}, "T2"},
		{"revoke the subject from an empty view", nil, nil, []Entry{e("T1", Token)}, "T1"},
	} {
		if got := ids(Merge(tc.before, tc.after, tc.current)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A secret is Verified (no hash to compute) only once Verify accepted it,
// for its subject, and no longer after a revocation.
func TestVerifiedOnlyAfterVerify(t *testing.T) {
	s := New(nil, nil, fast)
	secret, e, err := s.Issue("a", Token)
	if err != nil {
		t.Fatal(err)
	}
	if s.Verified("a", secret) {
		t.Fatal("verified before Verify")
	}
	if !s.Verify("a", secret, Token) || !s.Verified("a", secret) {
		t.Fatal("not verified after Verify")
	}
	if s.Verified("b", secret) || s.Verified("a", secret+"x") {
		t.Fatal("verified for another subject or secret")
	}
	if err := s.Revoke("a", e.ID); err != nil {
		t.Fatal(err)
	}
	if s.Verified("a", secret) {
		t.Fatal("verified after revocation")
	}
}
