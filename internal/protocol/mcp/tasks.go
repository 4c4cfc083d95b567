package mcp

import (
	"sync"
	"time"
)

// Tasks (MCP 2025-11-25, experimental) let a tools/call return a task id
// whose result is fetched later with tasks/result. Possession of a task id
// must not be enough to read another caller's tool output, so Warden binds
// every task id the server returns to the identity whose request created
// it, and refuses tasks/get, tasks/result and tasks/cancel by anyone else
// (or for ids it never saw: fail closed). tasks/list results and
// notifications/tasks/status are filtered to the caller's own tasks.
type taskStore struct {
	mu  sync.Mutex
	m   map[taskKey]taskEntry
	now func() time.Time
}

type taskKey struct{ backend, id string }

type taskEntry struct {
	owner string
	seen  time.Time
}

// taskTTL bounds how long an unused binding is kept.
const taskTTL = 24 * time.Hour

const maxTasks = 100000

func newTaskStore(now func() time.Time) *taskStore {
	return &taskStore{m: map[taskKey]taskEntry{}, now: now}
}

func (s *taskStore) bind(backend, id, owner string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := taskKey{backend, id}
	now := s.now()
	if e, ok := s.m[k]; ok && e.owner != owner && now.Sub(e.seen) <= taskTTL {
		return false
	}
	if len(s.m) >= maxTasks {
		for k, e := range s.m {
			if now.Sub(e.seen) > taskTTL {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxTasks {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
	}
	s.m[k] = taskEntry{owner: owner, seen: now}
	return true
}

// owns reports whether id is a live task of owner.
func (s *taskStore) owns(backend, id, owner string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := taskKey{backend, id}
	e, ok := s.m[k]
	now := s.now()
	if !ok || now.Sub(e.seen) > taskTTL {
		delete(s.m, k)
		return false
	}
	if owner == "" || e.owner != owner {
		return false
	}
	e.seen = now
	s.m[k] = e
	return true
}
