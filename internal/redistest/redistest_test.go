package redistest

import (
	"context"
	"testing"
	"time"
)

func TestStartAnswersPing(t *testing.T) {
	addr := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ping(ctx, addr); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
	}
}

func TestKillAndRestart(t *testing.T) {
	s := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Kill()
	if err := ping(ctx, s.Addr()); err == nil {
		t.Fatalf("ping %s after Kill succeeded; want an error", s.Addr())
	}
	s.Kill() // idempotent
	s.Restart()
	if err := ping(ctx, s.Addr()); err != nil {
		t.Fatalf("ping %s after Restart: %v", s.Addr(), err)
	}
}
