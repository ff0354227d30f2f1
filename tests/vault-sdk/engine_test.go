package vaultsdk

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	mountDefaultTTL = 30 * time.Minute
	mountMaxTTL     = 3 * time.Hour
)

// num reads a JSON number as the host decodes it (float64, or json.Number).
func num(t *testing.T, v any) float64 {
	t.Helper()
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			t.Fatal(err)
		}
		return f
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	t.Fatalf("not a number: %T %v", v, v)
	return 0
}

func strs(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			out = append(out, fmt.Sprint(e))
		}
	case []string:
		out = l
	}
	return out
}

// The config is written and read through HashiCorp's host; the master key never comes back,
// in any field, nor appears in the host's log.
func TestConfigWriteRead(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	l := h.env.LiteLLM

	// Vault asks the existence check first to choose create or update.
	checkFound, exists, err := m.Backend.HandleExistenceCheck(ctx(t), m.Request(logical.CreateOperation, "config", nil))
	if err != nil || !checkFound || exists {
		t.Fatalf("existence check before the first write: found=%v exists=%v err=%v, want true false nil", checkFound, exists, err)
	}
	// verify_connection defaults to true: the write makes a real authenticated call.
	ok(t, m, logical.CreateOperation, "config", map[string]any{"base_url": l.base, "master_key": l.key, "request_timeout": "20s"})
	_, exists, _ = m.Backend.HandleExistenceCheck(ctx(t), m.Request(logical.UpdateOperation, "config", nil))
	if !exists {
		t.Fatal("existence check after the write: config does not exist")
	}

	resp := ok(t, m, logical.ReadOperation, "config", nil)
	if resp == nil {
		t.Fatal("config read returned nothing")
	}
	if got := resp.Data["base_url"]; got != l.base {
		t.Errorf("base_url = %v, want %s", got, l.base)
	}
	if got := num(t, resp.Data["request_timeout"]); got != 20 {
		t.Errorf("request_timeout = %v, want 20 (seconds)", got)
	}
	if _, present := resp.Data["master_key"]; present {
		t.Error("config read returned a master_key field")
	}
	raw, _ := json.Marshal(resp)
	if strings.Contains(string(raw), l.key) {
		t.Error("config read returned the master key's value")
	}
	// A partial update keeps the key (reads still work) and changes only the field given.
	ok(t, m, logical.UpdateOperation, "config", map[string]any{"request_timeout": 15})
	resp = ok(t, m, logical.ReadOperation, "config", nil)
	if got := num(t, resp.Data["request_timeout"]); got != 15 {
		t.Errorf("request_timeout after update = %v, want 15", got)
	}
	if strings.Contains(h.logs.String(), l.key) {
		t.Error("the master key appears in the host's log (plugin stderr)")
	}
	// Stored through the SDK's storage server, under the key the plugin marks seal-wrapped.
	if e, err := m.Storage.InmemStorage.Get(ctx(t), "config"); err != nil || e == nil {
		t.Fatalf("config entry not in host storage: %v", err)
	}
	sp := m.Backend.SpecialPaths()
	// The config (admin key) and the static roles' keys.
	if sp == nil || !reflect.DeepEqual(sp.SealWrapStorage, []string{"config", "static-keys/"}) {
		t.Errorf("SpecialPaths().SealWrapStorage = %+v, want [config static-keys/]", sp)
	}
}

// Role create, read, partial update, list and delete, as Vault's router sends them.
func TestRolesCRUDAndList(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)

	ok(t, m, logical.CreateOperation, "roles/alpha", map[string]any{
		"models": "fake-gpt, fake-claude", "ttl": "1h", "max_ttl": 7200, "max_budget": 1.5,
		"tpm_limit": 1000, "metadata": map[string]any{"team": "blue"},
	})
	ok(t, m, logical.CreateOperation, "roles/beta", map[string]any{"models": []any{"fake-gpt"}})

	resp := ok(t, m, logical.ReadOperation, "roles/alpha", nil)
	if got := strs(resp.Data["models"]); !reflect.DeepEqual(got, []string{"fake-gpt", "fake-claude"}) {
		t.Errorf("models = %v", got)
	}
	for field, want := range map[string]float64{"ttl": 3600, "max_ttl": 7200, "max_budget": 1.5, "tpm_limit": 1000} {
		if got := num(t, resp.Data[field]); got != want {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}
	if md, _ := resp.Data["metadata"].(map[string]any); md["team"] != "blue" {
		t.Errorf("metadata = %v", resp.Data["metadata"])
	}

	// Update changes only the fields given.
	ok(t, m, logical.UpdateOperation, "roles/alpha", map[string]any{"ttl": "30m"})
	resp = ok(t, m, logical.ReadOperation, "roles/alpha", nil)
	if got := num(t, resp.Data["ttl"]); got != 1800 {
		t.Errorf("ttl after update = %v, want 1800", got)
	}
	if got := strs(resp.Data["models"]); len(got) != 2 {
		t.Errorf("models changed by an update that did not name them: %v", got)
	}

	found, exists, err := m.Backend.HandleExistenceCheck(ctx(t), m.Request(logical.CreateOperation, "roles/alpha", nil))
	if err != nil || !found || !exists {
		t.Errorf("existence check roles/alpha: %v %v %v", found, exists, err)
	}
	_, exists, _ = m.Backend.HandleExistenceCheck(ctx(t), m.Request(logical.CreateOperation, "roles/nope", nil))
	if exists {
		t.Error("existence check says roles/nope exists")
	}

	req, resp, err := m.Handle(ctx(t), logical.ListOperation, "roles/", nil)
	if status, shown := VaultHTTPStatus(req, resp, err); status != 0 {
		t.Fatalf("list roles/: Vault would answer %d: %v", status, shown)
	}
	if got := strs(resp.Data["keys"]); !reflect.DeepEqual(got, []string{"alpha", "beta"}) {
		t.Errorf("list roles/ = %v, want [alpha beta]", got)
	}

	ok(t, m, logical.DeleteOperation, "roles/beta", nil)
	req, resp, err = m.Handle(ctx(t), logical.ReadOperation, "roles/beta", nil)
	if status, _ := VaultHTTPStatus(req, resp, err); status != 404 {
		t.Errorf("read of a deleted role: Vault would answer %d, want 404", status)
	}
	resp = ok(t, m, logical.ListOperation, "roles/", nil)
	if got := strs(resp.Data["keys"]); !reflect.DeepEqual(got, []string{"alpha"}) {
		t.Errorf("list after delete = %v, want [alpha]", got)
	}
	ok(t, m, logical.DeleteOperation, "roles/alpha", nil)
	req, resp, err = m.Handle(ctx(t), logical.ListOperation, "roles/", nil)
	if status, _ := VaultHTTPStatus(req, resp, err); status != 404 {
		t.Errorf("list of no roles: Vault would answer %d, want 404", status)
	}
}

// creds returns a logical.Response with a Secret whose TTL is what HashiCorp's
// framework.CalculateTTL gives for the role and mount limits, and a live LiteLLM key.
func TestCredsLeaseMatchesCalculateTTL(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	l := h.env.LiteLLM
	configure(t, m, l)
	prefix := uniquePrefix(t)
	leases := trackLeases(t, m, l, prefix)

	cases := []struct {
		name          string
		role          map[string]any
		op            logical.Operation
		data          map[string]any
		roleTTL       time.Duration // what the role stores
		roleMaxTTL    time.Duration
		askedTTL      time.Duration
		wantWarnCount int
	}{
		{name: "role-ttl", role: map[string]any{"ttl": "1h", "max_ttl": "2h"}, roleTTL: time.Hour, roleMaxTTL: 2 * time.Hour},
		{name: "mount-default", role: map[string]any{}},
		{name: "capped-by-mount-max", role: map[string]any{"ttl": "4h"}, roleTTL: 4 * time.Hour, wantWarnCount: 1},
		// The mount default (30m) is above the role's max_ttl. (A role ttl above its own
		// max_ttl is refused when the role is written.)
		{name: "capped-by-role-max", role: map[string]any{"max_ttl": "20m"}, roleMaxTTL: 20 * time.Minute, wantWarnCount: 1},
		{name: "asked-shorter", role: map[string]any{"ttl": "1h", "max_ttl": "2h"}, op: logical.UpdateOperation, data: map[string]any{"ttl": "10m"}, roleTTL: time.Hour, roleMaxTTL: 2 * time.Hour, askedTTL: 10 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			role := map[string]any{"models": "fake-gpt", "key_alias_prefix": prefix}
			for k, v := range c.role {
				role[k] = v
			}
			ok(t, m, logical.CreateOperation, "roles/"+c.name, role)
			op := c.op
			if op == "" {
				op = logical.ReadOperation
			}
			before := time.Now()
			path := "creds/" + c.name
			resp := ok(t, m, op, path, c.data)
			token := leases.add(path, resp)

			backendTTL := c.roleTTL
			if c.askedTTL > 0 {
				backendTTL = c.askedTTL
			}
			wantTTL, wantWarn, err := framework.CalculateTTL(m.System, 0, backendTTL, 0, c.roleMaxTTL, 0, time.Time{})
			if err != nil {
				t.Fatalf("CalculateTTL: %v", err)
			}
			s := resp.Secret
			if s.TTL != wantTTL {
				t.Errorf("Secret.TTL = %v, CalculateTTL says %v", s.TTL, wantTTL)
			}
			if s.MaxTTL != c.roleMaxTTL {
				t.Errorf("Secret.MaxTTL = %v, want the role's max_ttl %v", s.MaxTTL, c.roleMaxTTL)
			}
			if !s.Renewable {
				t.Error("Secret is not renewable")
			}
			if got := s.InternalData["secret_type"]; got != "litellm_key" {
				t.Errorf("InternalData[secret_type] = %v, want litellm_key (the framework routes renew/revoke by it)", got)
			}
			if len(wantWarn) != c.wantWarnCount {
				t.Fatalf("oracle gave %d warnings, case expects %d: %q", len(wantWarn), c.wantWarnCount, wantWarn)
			}
			for _, w := range wantWarn {
				if !contains(resp.Warnings, w) {
					t.Errorf("warning %q (CalculateTTL's) missing from the response's %q", w, resp.Warnings)
				}
			}
			if key, _ := resp.Data["key"].(string); !strings.HasPrefix(key, "sk-") {
				t.Errorf("data.key does not look like a LiteLLM key")
			}
			alias, _ := resp.Data["key_alias"].(string)
			if !strings.HasPrefix(alias, prefix+"-"+c.name+"-") {
				t.Errorf("key_alias = %q, want prefix %s-%s-", alias, prefix, c.name)
			}
			ki, err := l.keyInfo(token)
			if err != nil {
				t.Fatal(err)
			}
			if !ki.Found || ki.Status == "deleted" || ki.Alias != alias {
				t.Fatalf("LiteLLM /key/info: %+v, want a live key with alias %s", ki, alias)
			}
			// LiteLLM's own expiry follows the lease (plus the plugin's 5 s buffer).
			wantExp := before.Add(wantTTL + 5*time.Second)
			if d := ki.Expires.Sub(wantExp); d < -5*time.Second || d > 10*time.Second {
				t.Errorf("LiteLLM expires %v, want about %v (lease TTL %v + 5s)", ki.Expires, wantExp, wantTTL)
			}
			if got := ki.Metadata["vault_mount"]; got != m.Options.Path {
				t.Errorf("key metadata vault_mount = %v, want %s", got, m.Options.Path)
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// Renew and revoke as Vault's expiration manager sends them: the stored secret with the
// lease's issue time and the requested increment. The expected TTL is CalculateTTL's.
func TestRenewAndRevoke(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	l := h.env.LiteLLM
	configure(t, m, l)
	prefix := uniquePrefix(t)
	leases := trackLeases(t, m, l, prefix)
	ok(t, m, logical.CreateOperation, "roles/dev", map[string]any{"models": "fake-gpt", "ttl": "1h", "max_ttl": "2h", "key_alias_prefix": prefix})
	roleTTL, roleMax := time.Hour, 2*time.Hour

	issued := time.Now()
	resp := ok(t, m, logical.ReadOperation, "creds/dev", nil)
	token := leases.add("creds/dev", resp)
	leaseData := resp.Data

	renew := func(t *testing.T, issueTime time.Time, increment time.Duration) (*logical.Request, *logical.Response, error) {
		t.Helper()
		secret := *resp.Secret
		secret.IssueTime = issueTime
		secret.Increment = increment
		secret.LeaseID = ""
		req := logical.RenewRequest("creds/dev", &secret, leaseData)
		req.Storage = m.Storage
		out, err := m.Backend.HandleRequest(ctx(t), req)
		return req, out, err
	}

	for _, c := range []struct {
		name      string
		issueTime time.Time
		increment time.Duration
		slack     time.Duration // the oracle reads the clock too when the issue time is in the past
	}{
		{name: "role-ttl", issueTime: issued, increment: 0, slack: time.Second},
		{name: "increment", issueTime: issued, increment: 30 * time.Minute, slack: time.Second},
		{name: "capped-at-max", issueTime: time.Now().Add(-90 * time.Minute), increment: time.Hour, slack: 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, out, err := renew(t, c.issueTime, c.increment)
			if status, shown := VaultHTTPStatus(req, out, err); status != 0 || err != nil {
				t.Fatalf("renew: Vault would answer %d: %v (err %v)", status, shown, err)
			}
			want, _, oerr := framework.CalculateTTL(m.System, c.increment, roleTTL, 0, roleMax, 0, c.issueTime)
			if oerr != nil {
				t.Fatal(oerr)
			}
			if out == nil || out.Secret == nil {
				t.Fatal("renew response has no secret")
			}
			if d := out.Secret.TTL - want; d < -c.slack || d > c.slack {
				t.Errorf("renewed TTL = %v, CalculateTTL says %v", out.Secret.TTL, want)
			}
			if out.Secret.MaxTTL != roleMax {
				t.Errorf("renewed MaxTTL = %v, want %v", out.Secret.MaxTTL, roleMax)
			}
			// The key's expiry in LiteLLM moved with the lease.
			ki, err := l.keyInfo(token)
			if err != nil {
				t.Fatal(err)
			}
			wantExp := time.Now().Add(want + 5*time.Second)
			if d := ki.Expires.Sub(wantExp); d < -10*time.Second || d > 10*time.Second {
				t.Errorf("after renew LiteLLM expires %v, want about %v", ki.Expires, wantExp)
			}
		})
	}

	t.Run("past-max-ttl", func(t *testing.T) {
		issue := time.Now().Add(-3 * time.Hour)
		_, _, oerr := framework.CalculateTTL(m.System, 0, roleTTL, 0, roleMax, 0, issue)
		if oerr == nil {
			t.Fatal("oracle: CalculateTTL accepted a renewal past the max TTL")
		}
		req, out, err := renew(t, issue, 0)
		status, shown := VaultHTTPStatus(req, out, err)
		if status < 400 || shown == nil || !strings.Contains(shown.Error(), oerr.Error()) {
			t.Errorf("renew past the max TTL: status %d, error %v; want an error containing %q", status, shown, oerr)
		}
		t.Logf("renew past the max TTL: Vault would answer %d: %v", status, shown)
	})

	t.Run("revoke", func(t *testing.T) {
		secret := *resp.Secret
		req := logical.RevokeRequest("creds/dev", &secret, leaseData)
		req.Storage = m.Storage
		out, err := m.Backend.HandleRequest(ctx(t), req)
		if status, shown := VaultHTTPStatus(req, out, err); err != nil || (status != 0 && status != 404) {
			t.Fatalf("revoke: %d %v %v", status, shown, err)
		}
		leases.revoked(token)
		if l.live(t, token) {
			t.Fatal("revoked key is still live in LiteLLM (/key/info)")
		}
		// Vault retries a revoke it did not see succeed: the second one must succeed too.
		req = logical.RevokeRequest("creds/dev", &secret, leaseData)
		req.Storage = m.Storage
		if _, err := m.Backend.HandleRequest(ctx(t), req); err != nil {
			t.Fatalf("second revoke of the same lease: %v", err)
		}
		// Nothing of the lease is left in storage but the config and the role.
		ks, err := m.Storage.Keys(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(ks)
		for _, k := range ks {
			if k != "config" && !strings.HasPrefix(k, "roles/") && !strings.HasPrefix(k, "tidy/") {
				t.Errorf("storage entry %q left after revoke", k)
			}
		}
	})
}
