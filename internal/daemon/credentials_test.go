package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/statefile"
	"github.com/lbd-project/lbd/pkg/cluster"
)

// An upgraded node imports its credentials.json into its state store
// once (the file is renamed); the store then reads and writes them there,
// so a second store on the same state (another node) verifies them; a
// removed tenant's credentials are dropped by the leader.
func TestCredentialsImportedIntoTheState(t *testing.T) {
	dir := t.TempDir()
	fast := credential.Params{Time: 1, MemKiB: 64, Threads: 1}
	c := mustParse(t, `
nodes: [{name: st1, role: storage, address: 10.0.1.1}]
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}, allow: []}
  - {name: b, service: {vip: 10.0.0.1, port: 11212}, allow: []}
`)
	// The old version's file: a's credential, b's token, the operator's.
	old := credential.New(nil, func(e []credential.Entry) error { return statefile.Save(filepath.Join(dir, credentialsFile), e) }, fast)
	sa, _, _ := old.Issue("a", credential.Login)
	sb, _, _ := old.Issue("b", credential.Token)
	so, _, _ := old.Issue(credential.Operator, credential.Login)

	creds, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cluster.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{log: slog.New(slog.DiscardHandler), cfg: c, opts: Options{StateDir: dir}, node: c.Nodes[0],
		creds: creds, store: store, ctl: &localControl{name: "st1", store: store}}
	d.st.caughtUp = true
	d.st.index = 1 << 40 // the desired state is as new as the store
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	d.runCredentials(ctx, &wg)
	waitFor(t, "credentials.json imported", func() bool {
		_, err := os.Stat(filepath.Join(dir, credentialsFile+importedSuffix))
		return err == nil
	})
	for _, k := range []string{"credentials/a", "credentials/b", "credentials/_operator"} {
		if _, ok := store.Get(k); !ok {
			t.Errorf("%s not in the state", k)
		}
	}
	if !d.creds.Verify("a", sa) || !d.creds.Verify("b", sb) || !d.creds.Verify(credential.Operator, so) {
		t.Error("an imported credential does not verify")
	}
	// Another node's store, on the same state, verifies a new credential.
	sa2, err := d.IssueCredential(ctx, "a", false)
	if err != nil {
		t.Fatal(err)
	}
	other := credential.New(nil, nil, fast)
	i, es := d.sharedCredentials(store)
	other.Share(saveCredentials(store), i, es)
	if !other.Verify("a", sa2.Secret) || other.Verify("a", sa) {
		t.Error("the other store does not see the reissued credential")
	}
	// b is removed from the desired state: the leader drops its secrets.
	d.mu.Lock()
	d.cfg = mustParse(t, `
nodes: [{name: st1, role: storage, address: 10.0.1.1}]
tenants: [{name: a, service: {vip: 10.0.0.1, port: 11211}, allow: []}]
`)
	d.mu.Unlock()
	d.dropRemovedCredentials(ctx, store)
	waitFor(t, "b's token revoked", func() bool { return !d.creds.Verify("b", sb) })
	if _, ok := store.Get("credentials/b"); ok {
		t.Error("b's credentials still in the state")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !ok(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two nodes issue tokens for one tenant at once, each on a view that has
// not seen the other's: the state keeps both (writes are merged and
// conditional on the subject's version).
func TestCredentialsConcurrentIssue(t *testing.T) {
	store, err := cluster.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fast := credential.Params{Time: 1, MemKiB: 64, Threads: 1}
	a, b := credential.New(nil, nil, fast), credential.New(nil, nil, fast)
	a.Share(saveCredentials(store), 0, nil)
	b.Share(saveCredentials(store), 0, nil)
	var secrets []string
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = b // never refreshed: its view is stale
		}
		sec, _, err := s.Issue("t", credential.Token)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, sec)
	}
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	c := credential.New(nil, nil, fast)
	i, es := d.sharedCredentials(store)
	c.Share(saveCredentials(store), i, es)
	for n, sec := range secrets {
		if !c.Verify("t", sec) {
			t.Errorf("token %d lost", n)
		}
	}
}
