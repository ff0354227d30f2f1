package vaultsdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// env is what every test needs from its surroundings; missing pieces fail the test, they
// never skip it.
type env struct {
	PluginBin string
	LiteLLM   *liteLLM
}

func requireEnv(t *testing.T) env {
	t.Helper()
	bin := os.Getenv("PLUGIN_BIN")
	if bin == "" {
		t.Fatal("PLUGIN_BIN is not set: point it at the plugin binary (target/debug/vault-plugin-secrets-litellm)")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("PLUGIN_BIN=%s is not an executable file (%v)", bin, err)
	}
	base := strings.TrimRight(os.Getenv("LITELLM_BASE_URL"), "/")
	key := os.Getenv("LITELLM_MASTER_KEY")
	if base == "" || key == "" {
		t.Fatal("LITELLM_BASE_URL and LITELLM_MASTER_KEY must be set (a running LiteLLM proxy; e.g. source /tmp/litellm-local/env)")
	}
	return env{PluginBin: bin, LiteLLM: &liteLLM{base: base, key: key, http: &http.Client{Timeout: 30 * time.Second}}}
}

// logBuffer collects the host's log lines (go-plugin's and the plugin's stderr) so tests can
// assert on them; they are also written to the test log when the test fails or with -v.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// harness is a host with the plugin registered, ready to mount.
type harness struct {
	*Host
	env  env
	logs *logBuffer
	t    *testing.T
}

// newHarness registers the plugin with catalogEnv and kills its process when the test ends.
func newHarness(t *testing.T, catalogEnv ...string) *harness {
	t.Helper()
	e := requireEnv(t)
	logs := &logBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.Debug, Output: logs})
	host, err := NewHost(e.PluginBin, catalogEnv, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{Host: host, env: e, logs: logs, t: t}
	t.Cleanup(func() {
		host.Kill()
		if t.Failed() {
			t.Logf("host log:\n%s", redact(logs.String(), e.LiteLLM.key))
		}
	})
	return h
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<master key>")
}

// mount mounts the engine at path with the given lease limits.
func (h *harness) mount(path string, defTTL, maxTTL time.Duration) *Mount {
	h.t.Helper()
	m, err := h.Mount(ctx(h.t), MountOptions{Path: path, DefaultLeaseTTL: defTTL, MaxLeaseTTL: maxTTL})
	if err != nil {
		h.t.Fatalf("mounting %s: %v", path, err)
	}
	return m
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// ok sends a request that must succeed (Vault would answer 2xx) and returns the response.
func ok(t *testing.T, m *Mount, op logical.Operation, path string, data map[string]any) *logical.Response {
	t.Helper()
	req, resp, err := m.Handle(ctx(t), op, path, data)
	if status, shown := VaultHTTPStatus(req, resp, err); status != 0 && status != 404 {
		t.Fatalf("%s %s: Vault would answer %d: %v", op, path, status, shown)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// configure writes the config pointing at the real LiteLLM.
func configure(t *testing.T, m *Mount, l *liteLLM) {
	t.Helper()
	ok(t, m, logical.UpdateOperation, "config", map[string]any{"base_url": l.base, "master_key": l.key})
}

// uniquePrefix is a key_alias_prefix no other test run uses, so leftovers are attributable.
func uniquePrefix(t *testing.T) string {
	id, err := multiplexID()
	if err != nil {
		t.Fatal(err)
	}
	return "gosdk" + strings.ToLower(id[:6])
}

// issued records the leases a test created, and revokes any still open when it ends.
type issued struct {
	t      *testing.T
	m      *Mount
	l      *liteLLM
	prefix string
	open   map[string]*logical.Secret
	path   map[string]string
}

func trackLeases(t *testing.T, m *Mount, l *liteLLM, prefix string) *issued {
	is := &issued{t: t, m: m, l: l, prefix: prefix, open: map[string]*logical.Secret{}, path: map[string]string{}}
	t.Cleanup(func() {
		for token, s := range is.open {
			req := logical.RevokeRequest(is.path[token], s, nil)
			req.Storage = m.Storage
			if _, err := m.Backend.HandleRequest(context.Background(), req); err != nil {
				t.Errorf("cleanup: revoking a lease: %v", err)
			}
		}
		// Belt and braces: whatever the plugin did, no key of this test may stay in LiteLLM.
		left, err := l.liveKeysWithAliasPrefix(prefix + "-")
		if err != nil {
			t.Errorf("cleanup: listing LiteLLM keys: %v", err)
			return
		}
		for _, k := range left {
			t.Errorf("cleanup: key %s was still live in LiteLLM; deleting it", k.Alias)
			_ = l.deleteAlias(k.Alias)
		}
	})
	return is
}

func (is *issued) add(path string, resp *logical.Response) string {
	token, _ := resp.Data["token_id"].(string)
	if token == "" || resp.Secret == nil {
		is.t.Fatalf("creds response without token_id or secret: data keys %v", keys(resp.Data))
	}
	is.open[token] = resp.Secret
	is.path[token] = path
	return token
}

func (is *issued) revoked(token string) { delete(is.open, token) }

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// liteLLM is the admin side of the real LiteLLM proxy, used to check what the plugin did.
type liteLLM struct {
	base string
	key  string
	http *http.Client
}

type keyInfo struct {
	Found    bool
	Status   string // "active", "deleted", ...
	Alias    string
	Expires  time.Time
	Metadata map[string]any
}

func (l *liteLLM) call(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+l.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("LiteLLM %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("LiteLLM %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// keyInfo reads /key/info for a key's hash (token_id).
func (l *liteLLM) keyInfo(token string) (keyInfo, error) {
	var body struct {
		Info struct {
			Status   *string        `json:"status"`
			Alias    string         `json:"key_alias"`
			Expires  *string        `json:"expires"`
			Metadata map[string]any `json:"metadata"`
		} `json:"info"`
	}
	code, err := l.call("GET", "/key/info?key="+url.QueryEscape(token), nil, &body)
	if err != nil {
		return keyInfo{}, err
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return keyInfo{}, nil
	default:
		return keyInfo{}, fmt.Errorf("LiteLLM /key/info: HTTP %d", code)
	}
	ki := keyInfo{Found: true, Status: "active", Alias: body.Info.Alias, Metadata: body.Info.Metadata}
	if body.Info.Status != nil && *body.Info.Status != "" {
		ki.Status = *body.Info.Status
	}
	if body.Info.Expires != nil {
		if ts, err := time.Parse(time.RFC3339Nano, *body.Info.Expires); err == nil {
			ki.Expires = ts
		}
	}
	return ki, nil
}

// live reports whether LiteLLM still has the key and it is not deleted.
func (l *liteLLM) live(t *testing.T, token string) bool {
	t.Helper()
	ki, err := l.keyInfo(token)
	if err != nil {
		t.Fatal(err)
	}
	return ki.Found && ki.Status != "deleted"
}

type listedKey struct {
	Token string
	Alias string
}

// liveKeysWithAliasPrefix pages through /key/list and returns the live keys whose alias
// starts with prefix.
func (l *liteLLM) liveKeysWithAliasPrefix(prefix string) ([]listedKey, error) {
	var out []listedKey
	for page := 1; ; page++ {
		var body struct {
			Keys []struct {
				Token string  `json:"token"`
				Alias *string `json:"key_alias"`
			} `json:"keys"`
			TotalPages int `json:"total_pages"`
		}
		code, err := l.call("GET", fmt.Sprintf("/key/list?return_full_object=true&size=100&page=%d", page), nil, &body)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("LiteLLM /key/list: HTTP %d", code)
		}
		for _, k := range body.Keys {
			if k.Alias != nil && strings.HasPrefix(*k.Alias, prefix) {
				out = append(out, listedKey{Token: k.Token, Alias: *k.Alias})
			}
		}
		if page >= body.TotalPages {
			return out, nil
		}
	}
}

// generate creates a key directly in LiteLLM (what an issue does before its lease exists).
func (l *liteLLM) generate(alias string) (string, error) {
	var body struct {
		Token string `json:"token"`
	}
	code, err := l.call("POST", "/key/generate", map[string]any{"key_alias": alias, "duration": "600s", "models": []string{"fake-gpt"}}, &body)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK || body.Token == "" {
		return "", fmt.Errorf("LiteLLM /key/generate: HTTP %d", code)
	}
	return body.Token, nil
}

func (l *liteLLM) deleteAlias(alias string) error {
	_, err := l.call("POST", "/key/delete", map[string]any{"key_aliases": []string{alias}}, nil)
	return err
}
