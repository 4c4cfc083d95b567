package policy

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce coalesces the burst of events one save produces (editors
// write, rename and chmod) into one reload.
const watchDebounce = 250 * time.Millisecond

// Watch reloads the policy when a Rego or data file changes, until ctx is
// done. It watches directories, not files, so editors that replace a file
// by renaming a new one over it are seen. A failed reload keeps the last
// good version (see Reload). With config Policy.Watch false, or nothing on
// disk to watch (the embedded library without data), it only waits for
// ctx; SIGHUP handling calls Reload directly.
func (e *Engine) Watch(ctx context.Context) {
	if !e.cfg.watch || (len(e.cfg.paths) == 0 && len(e.cfg.data) == 0) {
		<-ctx.Done()
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		e.log.Error("policy watch unavailable; reload with SIGHUP", "error", err)
		<-ctx.Done()
		return
	}
	defer w.Close()

	// trees are Rego directories watched recursively; files are single
	// files (Rego or data) watched through their parent directory.
	trees := map[string]bool{}
	files := map[string]bool{}
	for _, p := range e.cfg.paths {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			trees[p] = true
			e.addTree(w, p)
		} else {
			files[p] = true
			e.addDir(w, filepath.Dir(p))
		}
	}
	for _, p := range e.cfg.data {
		files[p] = true
		e.addDir(w, filepath.Dir(p))
	}
	relevant := func(name string) bool {
		if files[name] {
			return true
		}
		if filepath.Ext(name) != ".rego" {
			return false
		}
		for t := range trees {
			if strings.HasPrefix(name, t+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}

	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			e.log.Warn("policy watch error", "error", err)
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && underAny(ev.Name, trees) {
					e.addTree(w, ev.Name)
				}
			}
			// A name without an extension under a tree may be a directory
			// that was removed or renamed, taking Rego files with it.
			if !relevant(ev.Name) && !(underAny(ev.Name, trees) && filepath.Ext(ev.Name) == "") {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(watchDebounce)
			} else {
				timer.Reset(watchDebounce)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			e.log.Info("policy files changed; reloading")
			_ = e.Reload(ctx) // logged and counted by Reload
		}
	}
}

func underAny(name string, trees map[string]bool) bool {
	for t := range trees {
		if name == t || strings.HasPrefix(name, t+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func (e *Engine) addDir(w *fsnotify.Watcher, dir string) {
	if err := w.Add(dir); err != nil {
		e.log.Warn("policy watch: cannot watch directory", "dir", dir, "error", err)
	}
}

func (e *Engine) addTree(w *fsnotify.Watcher, root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		e.addDir(w, p)
		return nil
	})
}
