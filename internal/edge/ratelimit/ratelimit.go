// Package ratelimit counts a client's requests in fixed time windows kept
// in a key-value store (Workers KV on the edge): at most Limit requests
// per Window per client. Keys hold the window's start, so they expire on
// their own (KV's expirationTtl); the client's address is hashed, so the
// store never holds addresses.
//
// KV is eventually consistent across locations and accepts about one
// write per second per key, so the limit is approximate: a client that
// spreads a burst over several locations at once may get a few more. That
// is enough to stop one client filling the share bucket.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Store is the key-value store the counts live in.
type Store interface {
	// Get returns the value of key and whether it is there.
	Get(ctx context.Context, key string) (string, bool, error)
	// Put sets key to value, to expire after ttl.
	Put(ctx context.Context, key, value string, ttl time.Duration) error
}

// minTTL is the shortest expiry Workers KV accepts.
const minTTL = 60 * time.Second

// Limiter allows Limit requests per Window per client.
type Limiter struct {
	Store  Store
	Limit  int
	Window time.Duration
	// Prefix starts every key (such as "share:"), so that several
	// limiters can share one store.
	Prefix string
	// Now returns the current time; nil is time.Now.
	Now func() time.Time
}

// Decision is the outcome of one Allow.
type Decision struct {
	// Allowed is false once the client has used its Limit in this
	// window.
	Allowed bool
	// Remaining is how many more requests the window allows.
	Remaining int
	// RetryAfter is how long until the window ends.
	RetryAfter time.Duration
}

// Allow counts one request of client (ClientKey of the request) and says
// whether it is within the limit. A refused request is not counted.
func (l *Limiter) Allow(ctx context.Context, client string) (Decision, error) {
	if l.Limit <= 0 || l.Window <= 0 {
		return Decision{}, errors.New("ratelimit: Limit and Window must be positive")
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	start := t.Truncate(l.Window)
	key := l.Prefix + hashClient(client) + ":" + strconv.FormatInt(start.Unix(), 10)
	retry := start.Add(l.Window).Sub(t)

	count := 0
	v, ok, err := l.Store.Get(ctx, key)
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: reading the count: %w", err)
	}
	if ok {
		if count, err = strconv.Atoi(v); err != nil || count < 0 {
			count = 0 // a value we did not write: start again
		}
	}
	if count >= l.Limit {
		return Decision{Allowed: false, Remaining: 0, RetryAfter: retry}, nil
	}
	// The key lives until its window is over (KV's minimum is a minute).
	ttl := max(retry+time.Second, minTTL)
	if err := l.Store.Put(ctx, key, strconv.Itoa(count+1), ttl); err != nil {
		return Decision{}, fmt.Errorf("ratelimit: writing the count: %w", err)
	}
	return Decision{Allowed: true, Remaining: l.Limit - count - 1, RetryAfter: retry}, nil
}

// hashClient returns a short hash of a client key, so that stored keys
// carry no addresses.
func hashClient(client string) string {
	sum := sha256.Sum256([]byte("tgate-ratelimit\x00" + client))
	return hex.EncodeToString(sum[:12])
}

// ClientKey names the client of a request: the address Cloudflare puts in
// CF-Connecting-IP (which clients cannot set), else the connection's
// remote address. IPv6 addresses count per /64, the block one
// subscriber usually holds.
func ClientKey(r *http.Request) string {
	addr := strings.TrimSpace(r.Header.Get("CF-Connecting-IP"))
	if addr == "" {
		addr = r.RemoteAddr
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
	}
	ip := net.ParseIP(addr)
	switch {
	case ip == nil:
		return "addr:" + addr
	case ip.To4() != nil:
		return "ip4:" + ip.To4().String()
	default:
		return "ip6:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
}

// Memory is a Store in process memory, for tests and local runs; expired
// keys read as absent.
type Memory struct {
	mu  sync.Mutex
	m   map[string]memEntry
	Now func() time.Time
}

type memEntry struct {
	v       string
	expires time.Time
}

// Get returns key's value unless it has expired.
func (m *Memory) Get(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[key]
	if !ok || !m.now().Before(e.expires) {
		return "", false, nil
	}
	return e.v, true, nil
}

// Put sets key to value until ttl has passed.
func (m *Memory) Put(_ context.Context, key, value string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]memEntry{}
	}
	m.m[key] = memEntry{v: value, expires: m.now().Add(ttl)}
	return nil
}

// Len returns how many keys have not expired.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.m {
		if m.now().Before(e.expires) {
			n++
		}
	}
	return n
}

func (m *Memory) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}
