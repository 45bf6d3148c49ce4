package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/statefile"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
)

// credentialsPrefix is where the hashed credentials live in the cluster
// state: one key per subject, credentials/<tenant>, and the operator's
// under credentials/_operator (no tenant name starts with "_"). With a
// cluster section a credential issued through one node logs in on every
// node; without one the node's Local store keeps them, as it keeps its
// desired state.
const credentialsPrefix = "credentials/"

// operatorKey is the operator's subject in a key.
const operatorKey = "_operator"

// credentialSaveTimeout bounds one credential write to the cluster state.
const credentialSaveTimeout = 10 * time.Second

// importedSuffix is added to credentials.json once it is imported into
// the cluster state: it is imported once.
const importedSuffix = ".imported"

// credentialKey is the state's key of subject's entries.
func credentialKey(subject string) string {
	if subject == credential.Operator {
		return credentialsPrefix + operatorKey
	}
	return credentialsPrefix + subject
}

// subjectOfKey is the subject a credentials key is of.
func subjectOfKey(key string) string {
	s := strings.TrimPrefix(key, credentialsPrefix)
	if s == operatorKey {
		return credential.Operator
	}
	return s
}

// sharedCredentials decodes the credential entries of the cluster state,
// and the index they are as of. An entry that does not decode is left out
// (and logged): it opens nothing.
func (d *Daemon) sharedCredentials(store cluster.Store) (uint64, []credential.Entry) {
	idx := store.AppliedIndex() // before List: the list is at least as new
	var out []credential.Entry
	for _, e := range store.List(credentialsPrefix) {
		var es []credential.Entry
		if err := json.Unmarshal(e.Value, &es); err != nil {
			d.log.Error("credentials in the cluster state do not decode; they open nothing", "key", e.Key, "error", err)
			continue
		}
		subject := subjectOfKey(e.Key)
		for _, x := range es {
			if x.Subject == subject { // a key speaks for its subject only
				out = append(out, x)
			}
		}
	}
	return idx, out
}

// saveAttempts bounds the retries of a credential write that raced
// another write of the same subject.
const saveAttempts = 5

// saveCredentials is the credential store's SaveSubject: one subject's
// entries as one write to the cluster state (through the leader), merged
// with the entries there now and conditional on their version, so that a
// change made through another node meanwhile is kept, not undone.
func saveCredentials(store cluster.Store) credential.SaveSubject {
	return func(subject string, before, after []credential.Entry) ([]credential.Entry, uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), credentialSaveTimeout)
		defer cancel()
		key := credentialKey(subject)
		for try := 1; ; try++ {
			var current []credential.Entry
			cur, ok := store.Get(key)
			if ok {
				if err := json.Unmarshal(cur.Value, &current); err != nil {
					current = nil // undecodable: replaced
				}
			}
			merged := credential.Merge(before, after, current)
			op := cluster.Op{Key: key, Delete: len(merged) == 0, IfVersion: cluster.Version(cur.Version)}
			if !op.Delete {
				b, err := json.Marshal(merged)
				if err != nil {
					return nil, 0, err
				}
				op.Value = b
			}
			idx, err := store.Propose(ctx, op)
			if errors.Is(err, cluster.ErrConflict) && try < saveAttempts {
				// The subject changed meanwhile: merge again once this node
				// has applied the change (it may lag the leader a little).
				select {
				case <-ctx.Done():
					return nil, 0, ctx.Err()
				case <-time.After(time.Duration(try) * 50 * time.Millisecond):
				}
				continue
			}
			return merged, idx, err
		}
	}
}

// runCredentials moves the credentials into the cluster state: the store
// reads and writes them there from now on, the node's credentials.json,
// if any, is imported once (a subject the cluster already has keeps the
// cluster's), then every applied write refreshes them, and the leader
// drops those of removed tenants.
func (d *Daemon) runCredentials(ctx context.Context, wg *sync.WaitGroup) {
	store := d.store
	if store == nil || d.creds == nil {
		return
	}
	watch := store.Watch(ctx)
	idx, entries := d.sharedCredentials(store)
	d.creds.Share(saveCredentials(store), idx, entries)
	wg.Go(func() {
		imported := false
		for {
			if !imported {
				err := d.importCredentials(ctx, store)
				if err == nil {
					imported = true
				} else {
					d.log.Warn("credentials.json not imported into the cluster state yet; retrying", "error", err)
				}
			}
			d.creds.Replace(d.sharedCredentials(store))
			later := d.dropRemovedCredentials(ctx, store)
			retry := time.After(time.Hour)
			if !imported || later {
				retry = time.After(2 * time.Second)
			}
			select {
			case <-ctx.Done():
				return
			case _, ok := <-watch:
				if !ok {
					return
				}
			case <-retry:
			}
		}
	})
}

// importCredentials imports the node's credentials.json (the credentials
// of a version that kept them per node) into the cluster state, a subject
// at a time, where the state has none for that subject; then renames the
// file so that it is imported once.
func (d *Daemon) importCredentials(ctx context.Context, store cluster.Store) error {
	path := filepath.Join(d.stateDir(d.cfg), credentialsFile)
	var entries []credential.Entry
	found, err := statefile.Load(path, &entries)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if !found {
		return nil
	}
	var subjects []string
	for _, e := range entries {
		if !slices.Contains(subjects, e.Subject) {
			subjects = append(subjects, e.Subject)
		}
	}
	for _, s := range subjects {
		if _, ok := store.Get(credentialKey(s)); ok {
			d.log.Warn("credentials.json: the cluster state has credentials for this subject already; the file's are dropped", "subject", subjectLabel(s))
			continue
		}
		b, err := json.Marshal(credential.Of(entries, s))
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, credentialSaveTimeout)
		_, err = store.Propose(pctx, cluster.Op{Key: credentialKey(s), Value: b, IfVersion: cluster.Version(0)})
		cancel()
		if errors.Is(err, cluster.ErrConflict) {
			d.log.Warn("credentials.json: another node set this subject's credentials first; the file's are dropped", "subject", subjectLabel(s))
			continue
		}
		if err != nil {
			return fmt.Errorf("credentials of %s: %w", subjectLabel(s), err)
		}
		d.log.Info("credentials.json: imported into the cluster state", "subject", subjectLabel(s))
	}
	if err := os.Rename(path, path+importedSuffix); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

// dropRemovedCredentials, on the leader, deletes the credentials of the
// subjects that are no tenant of the desired state any more (a tenant
// added again under the same name starts without them). It reports
// whether to look again soon: the desired state lags the store.
func (d *Daemon) dropRemovedCredentials(ctx context.Context, store cluster.Store) (later bool) {
	ctl := d.control()
	if ctl == nil || ctl.Freshness().Leader != d.node.Name {
		return false
	}
	d.mu.RLock()
	cfg, caughtUp, asOf := d.cfg, d.st.caughtUp, d.st.index
	d.mu.RUnlock()
	if !caughtUp {
		return true
	}
	later = asOf < store.AppliedIndex()
	var ops []cluster.Op
	for _, e := range store.List(credentialsPrefix) {
		s := subjectOfKey(e.Key)
		// A credential newer than the desired state this node holds may be
		// of a tenant added since: judged on a later round.
		if e.Version > asOf || s == credential.Operator || slices.ContainsFunc(cfg.Tenants, func(t config.Tenant) bool { return t.Name == s }) {
			continue
		}
		ops = append(ops, cluster.Op{Key: e.Key, Delete: true, IfVersion: cluster.Version(e.Version)})
	}
	if len(ops) == 0 {
		return later
	}
	pctx, cancel := context.WithTimeout(ctx, credentialSaveTimeout)
	defer cancel()
	if _, err := store.Propose(pctx, ops...); err != nil {
		d.log.Warn("credentials of removed tenants not dropped yet", "error", err)
		return true
	}
	d.log.Info("credentials of removed tenants dropped", "count", len(ops))
	return later
}

func subjectLabel(s string) string {
	if s == credential.Operator {
		return "operator"
	}
	return s
}
