package vaultsdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// statusOf sends a request and returns the HTTP status Vault would answer with and the error
// it would show (VaultHTTPStatus: RespondErrorCommon + AdjustErrorStatusCode).
func statusOf(t *testing.T, m *Mount, op logical.Operation, path string, data map[string]any) (int, string) {
	t.Helper()
	req, resp, err := m.Handle(ctx(t), op, path, data)
	status, shown := VaultHTTPStatus(req, resp, err)
	msg := ""
	if shown != nil {
		// One line: core's multierror wrapping prints as "1 error occurred:\n\t* ...".
		msg = strings.Join(strings.Fields(shown.Error()), " ")
	}
	return status, msg
}

// Errors the caller can fix are 400 with a message naming what to fix; routing errors keep
// Vault's 404/405.
func TestErrorStatusesForCallerErrors(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)

	cases := []struct {
		name   string
		op     logical.Operation
		path   string
		data   map[string]any
		status int
		names  []string // the message must contain each
	}{
		{"unconfigured-creds", logical.ReadOperation, "creds/dev", nil, 400, []string{"dev"}},
		{"bad-duration", logical.CreateOperation, "roles/dev", map[string]any{"ttl": "banana"}, 400, []string{"ttl"}},
		{"bad-int", logical.CreateOperation, "roles/dev", map[string]any{"tpm_limit": "lots"}, 400, []string{"tpm_limit"}},
		{"negative-duration", logical.CreateOperation, "roles/dev", map[string]any{"max_ttl": -5}, 400, []string{"max_ttl"}},
		{"bad-bool", logical.UpdateOperation, "config", map[string]any{"base_url": "http://127.0.0.1:1", "master_key": "x", "verify_connection": "maybe"}, 400, []string{"verify_connection"}},
		{"config-missing-base-url", logical.CreateOperation, "config", map[string]any{"master_key": "x"}, 400, []string{"base_url"}},
		{"unsupported-path", logical.ReadOperation, "no/such/path", nil, 404, nil},
		{"unsupported-operation", logical.DeleteOperation, "creds/dev", nil, 405, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, msg := statusOf(t, m, c.op, c.path, c.data)
			if status != c.status {
				t.Errorf("Vault would answer %d (%s), want %d", status, msg, c.status)
			}
			for _, n := range c.names {
				if !strings.Contains(msg, n) {
					t.Errorf("message %q does not name %q", msg, n)
				}
			}
		})
	}

	// A role that does not exist, on a configured mount: the caller's mistake, 400 naming it.
	l := h.env.LiteLLM
	configure(t, m, l)
	status, msg := statusOf(t, m, logical.ReadOperation, "creds/ghost", nil)
	if status != 400 || !strings.Contains(msg, "ghost") {
		t.Errorf("creds for a missing role: Vault would answer %d (%s), want 400 naming the role", status, msg)
	}
}

// blackHole accepts TCP connections on 127.0.0.1 and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

// closedPort is a 127.0.0.1 URL nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// lostAnswers is a proxy in front of the real LiteLLM that forwards every request but never
// relays the answer to /key/generate: LiteLLM creates the key, the plugin times out. It
// records the aliases it saw being generated.
type lostAnswers struct {
	URL     string
	mu      sync.Mutex
	aliases []string
}

func newLostAnswers(t *testing.T, l *liteLLM) *lostAnswers {
	t.Helper()
	p := &lostAnswers{}
	client := &http.Client{Timeout: 30 * time.Second}
	forward := func(r *http.Request, body []byte) (*http.Response, error) {
		out, err := http.NewRequest(r.Method, l.base+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		out.Header = r.Header.Clone()
		return client.Do(out)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/key/generate" {
			var req struct {
				Alias string `json:"key_alias"`
			}
			_ = json.Unmarshal(body, &req)
			p.mu.Lock()
			p.aliases = append(p.aliases, req.Alias)
			p.mu.Unlock()
			if resp, err := forward(r, body); err == nil {
				resp.Body.Close()
			}
			<-r.Context().Done() // the answer is lost
			return
		}
		resp, err := forward(r, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	p.URL = "http://" + ln.Addr().String()
	return p
}

func (p *lostAnswers) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.aliases...)
}

// upstreamScenario configures m against base (unchecked: verify_connection=false, 2 s
// timeout), makes a role (unchecked: verify=false) with a fresh alias prefix and returns that
// prefix.
func upstreamScenario(t *testing.T, m *Mount, base, masterKey string) string {
	t.Helper()
	prefix := uniquePrefix(t)
	ok(t, m, logical.UpdateOperation, "config", map[string]any{
		"base_url": base, "master_key": masterKey, "verify_connection": false, "request_timeout": "2s",
	})
	// verify=false: the role is written while LiteLLM is down, so its models cannot be checked.
	ok(t, m, logical.CreateOperation, "roles/dev", map[string]any{"models": "fake-gpt", "key_alias_prefix": prefix, "verify": false})
	return prefix
}

// Failures of LiteLLM are not the caller's: unreachable -> 502, timed out -> 504, as coded
// errors (ProtoError err_type 3), so that Vault's clients retry them.
// (Before main's 215a5b3 the plugin answered these with an error response, which Vault
// turns into 400; this test failed then.)
func TestLiteLLMFailureStatuses_Unreachable502_Timeout504(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	key := h.env.LiteLLM.key

	for _, c := range []struct {
		name   string
		base   func() string
		status int
	}{
		{"unreachable-closed-port-502", func() string { return closedPort(t) }, 502},
		{"accepts-never-answers-504", func() string { return blackHole(t) }, 504},
		{"answer-lost-after-litellm-acted-504", func() string { return newLostAnswers(t, h.env.LiteLLM).URL }, 504},
	} {
		t.Run(c.name, func(t *testing.T) {
			upstreamScenario(t, m, c.base(), key)
			start := time.Now()
			status, msg := statusOf(t, m, logical.ReadOperation, "creds/dev", nil)
			if status != c.status {
				t.Errorf("creds: Vault would answer %d, want %d; message: %s", status, c.status, msg)
			}
			if !strings.Contains(msg, "LiteLLM") {
				t.Errorf("message does not name LiteLLM: %s", msg)
			}
			t.Logf("after %v: %d %s", time.Since(start).Round(time.Millisecond), status, msg)
		})
	}
}

// Whatever status they get, failed issues leave no key in LiteLLM, even when replayed the
// way Vault's API client replays a 5xx (three tries) and even when LiteLLM created the key
// but its answer was lost.
func TestLiteLLMFailuresLeaveNoKey(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	l := h.env.LiteLLM

	lost := newLostAnswers(t, l)
	for _, c := range []struct {
		name string
		base string
	}{
		{"unreachable", closedPort(t)},
		{"never-answers", blackHole(t)},
		{"answer-lost", lost.URL},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefix := upstreamScenario(t, m, c.base, l.key)
			for try := 1; try <= 3; try++ {
				status, msg := statusOf(t, m, logical.ReadOperation, "creds/dev", nil)
				if status < 400 {
					t.Fatalf("try %d: creds succeeded (%d) against a failing LiteLLM", try, status)
				}
				t.Logf("try %d: %d %s", try, status, msg)
			}
			left, err := l.liveKeysWithAliasPrefix(prefix + "-")
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range left {
				t.Errorf("key %s left live in LiteLLM after a failed issue", k.Alias)
				_ = l.deleteAlias(k.Alias)
			}
		})
	}
	// The proxy saw three generates reach LiteLLM: the "no key left" above was not vacuous.
	var reached int
	for _, a := range lost.seen() {
		if a != "" {
			reached++
		}
	}
	if reached != 3 {
		t.Errorf("the lost-answer proxy forwarded %d generates, want 3 (%s)", reached, fmt.Sprint(lost.seen()))
	}
}
