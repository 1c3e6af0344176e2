package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// clock is a settable time for the limiter and the store.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLimitPerWindow(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000_040, 0)}
	store := &Memory{Now: c.now}
	l := &Limiter{Store: store, Limit: 3, Window: time.Minute, Prefix: "share:", Now: c.now}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		d, err := l.Allow(ctx, "ip4:1.2.3.4")
		if err != nil || !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
	}
	d, err := l.Allow(ctx, "ip4:1.2.3.4")
	if err != nil || d.Allowed {
		t.Fatalf("4th request in the window: %+v %v", d, err)
	}
	if d.RetryAfter != 40*time.Second {
		t.Errorf("RetryAfter %v, want 40s", d.RetryAfter)
	}
	// Another client has its own count.
	if d, _ := l.Allow(ctx, "ip4:5.6.7.8"); !d.Allowed {
		t.Error("another client refused")
	}
	// The next window starts afresh.
	c.t = c.t.Add(41 * time.Second)
	if d, _ := l.Allow(ctx, "ip4:1.2.3.4"); !d.Allowed || d.Remaining != 2 {
		t.Errorf("next window: %+v", d)
	}
	// Keys expire: after two windows only the live ones remain.
	c.t = c.t.Add(5 * time.Minute)
	if n := store.Len(); n != 0 {
		t.Errorf("%d keys outlive their window", n)
	}
}

func TestKeysHoldNoAddress(t *testing.T) {
	store := &Memory{}
	l := &Limiter{Store: store, Limit: 1, Window: time.Hour, Prefix: "p:"}
	l.Allow(context.Background(), "ip4:203.0.113.9")
	for k := range store.m {
		if strings.Contains(k, "203.0.113") || !strings.HasPrefix(k, "p:") {
			t.Errorf("key %q", k)
		}
	}
}

func TestTTLAtLeastKVMinimum(t *testing.T) {
	var got time.Duration
	s := storeFunc{put: func(ttl time.Duration) error { got = ttl; return nil }}
	l := &Limiter{Store: s, Limit: 5, Window: 10 * time.Second}
	if _, err := l.Allow(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	if got < minTTL {
		t.Errorf("ttl %v below KV's minimum", got)
	}
}

func TestStoreErrors(t *testing.T) {
	boom := errors.New("kv down")
	l := &Limiter{Store: storeFunc{getErr: boom}, Limit: 1, Window: time.Minute}
	if _, err := l.Allow(context.Background(), "x"); !errors.Is(err, boom) {
		t.Errorf("get error: %v", err)
	}
	l.Store = storeFunc{put: func(time.Duration) error { return boom }}
	if _, err := l.Allow(context.Background(), "x"); !errors.Is(err, boom) {
		t.Errorf("put error: %v", err)
	}
	l.Store = storeFunc{value: "garbage", put: func(time.Duration) error { return nil }}
	if d, err := l.Allow(context.Background(), "x"); err != nil || !d.Allowed {
		t.Errorf("unreadable count: %+v %v", d, err)
	}
	if _, err := (&Limiter{Store: &Memory{}}).Allow(context.Background(), "x"); err == nil {
		t.Error("zero limiter allowed")
	}
}

func TestClientKey(t *testing.T) {
	cases := []struct {
		cf, remote, want string
	}{
		{"203.0.113.7", "10.0.0.1:5000", "ip4:203.0.113.7"},
		{"", "192.0.2.1:443", "ip4:192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "", "ip6:2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "", "ip6:2001:db8:1:2::/64"},
		{"::ffff:198.51.100.1", "", "ip4:198.51.100.1"},
		{"", "pipe", "addr:pipe"},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest("POST", "http://x/api/share", nil)
		if tc.cf != "" {
			r.Header.Set("CF-Connecting-IP", tc.cf)
		}
		r.RemoteAddr = tc.remote
		if got := ClientKey(r); got != tc.want {
			t.Errorf("%q %q: %q, want %q", tc.cf, tc.remote, got, tc.want)
		}
	}
}

// storeFunc is a Store whose answers the test sets.
type storeFunc struct {
	value  string
	getErr error
	put    func(ttl time.Duration) error
}

func (s storeFunc) Get(context.Context, string) (string, bool, error) {
	return s.value, s.value != "", s.getErr
}

func (s storeFunc) Put(_ context.Context, _, _ string, ttl time.Duration) error { return s.put(ttl) }
