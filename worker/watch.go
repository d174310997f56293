package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Watch rescans the scripts directory whenever something in it changes (a
// script, a version directory or a manifest added, removed or edited), once
// the changes have settled for Config.WatchDebounce. It returns when ctx ends,
// or at once when there is no scripts directory.
func (rt *Runtime) Watch(ctx context.Context) error {
	if rt.cfg.ScriptsDir == "" {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching the scripts directory: %w", err)
	}
	defer w.Close()
	if err := rt.watchTree(w); err != nil {
		return err
	}
	timer := time.NewTimer(rt.cfg.WatchDebounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(rt.cfg.WatchDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			rt.logger.Warn("watching the scripts directory", zap.Error(err))
		case <-timer.C:
			// Watch new directories first, so that a change made while
			// the rescan runs is not missed.
			if err := rt.watchTree(w); err != nil {
				rt.logger.Warn("watching the scripts directory", zap.Error(err))
			}
			if _, err := rt.Rescan(); err != nil {
				rt.logger.Warn("rescanning the scripts directory", zap.Error(err))
			}
		}
	}
}

// watchTree watches the scripts directory and the two levels below it
// (names and versions, where the manifests are). fsnotify is not recursive;
// adding a watched path again is harmless.
func (rt *Runtime) watchTree(w *fsnotify.Watcher) error {
	root := rt.cfg.ScriptsDir
	if err := w.Add(root); err != nil {
		return fmt.Errorf("watching %s: %w", root, err)
	}
	names, _ := os.ReadDir(root)
	for _, n := range names {
		dir := filepath.Join(root, n.Name())
		if !isDir(dir) {
			continue
		}
		_ = w.Add(dir)
		versions, _ := os.ReadDir(dir)
		for _, v := range versions {
			if vdir := filepath.Join(dir, v.Name()); isDir(vdir) {
				_ = w.Add(vdir)
			}
		}
	}
	return nil
}
