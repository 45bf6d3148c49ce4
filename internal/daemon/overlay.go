package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/lbd-project/lbd/internal/statefile"
)

const overlayFile = "runtime.json"

// loadOverlay reads the runtime changes kept under dir (none if absent).
func loadOverlay(dir string) (*Overlay, error) {
	ov := &Overlay{}
	if _, err := statefile.Load(filepath.Join(dir, overlayFile), ov); err != nil {
		return nil, fmt.Errorf("daemon: runtime changes: %w", err)
	}
	return ov, nil
}

// saveOverlay persists the runtime changes atomically.
func saveOverlay(dir string, ov *Overlay) error {
	if err := statefile.Save(filepath.Join(dir, overlayFile), ov); err != nil {
		return fmt.Errorf("daemon: save runtime changes: %w", err)
	}
	return nil
}
