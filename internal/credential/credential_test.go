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
