package vaultsdk

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

// processEnv reads a running process's environment (after exec's de-duplication).
func processEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatalf("reading the plugin's environment: %v", err)
	}
	out := map[string]string{}
	for _, kv := range strings.Split(string(raw), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// childPlugins lists the pids of this test process's children running the plugin binary.
func childPlugins(t *testing.T, bin string) []int {
	t.Helper()
	abs, _ := filepath.Abs(bin)
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(stat)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 3 || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == abs {
			out = append(out, pid)
		}
	}
	return out
}

// The plugin gets the environment Vault gives an ordinary external plugin: the server's
// environment with the catalog env over it, the three VAULT_* variables the runner sets for a
// v5 AutoMTLS launch (no BAO_* ones, no unwrap token), and go-plugin's own.
func TestLaunchEnvironmentAsVaultSetsIt(t *testing.T) {
	t.Setenv("LITELLM_PLUGIN_WAL_MIN_AGE", "1h") // the server's environment
	t.Setenv("GOSDK_SERVER_ONLY", "server")
	h := newHarness(t, "LITELLM_PLUGIN_WAL_MIN_AGE=1s", "GOSDK_CATALOG_ONLY=catalog")
	h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	pid := h.Pid()
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	penv := processEnv(t, pid)

	if got := penv["LITELLM_PLUGIN_WAL_MIN_AGE"]; got != "1s" {
		t.Errorf("LITELLM_PLUGIN_WAL_MIN_AGE = %q, want the catalog's 1s over the server's 1h", got)
	}
	if penv["GOSDK_SERVER_ONLY"] != "server" || penv["GOSDK_CATALOG_ONLY"] != "catalog" {
		t.Errorf("server-only or catalog-only variable missing")
	}
	want := map[string]string{
		"VAULT_VERSION":                 VaultVersion,
		"VAULT_PLUGIN_METADATA_MODE":    "false",
		"VAULT_PLUGIN_AUTOMTLS_ENABLED": "true",
	}
	for k, v := range want {
		if penv[k] != v {
			t.Errorf("%s = %q, want %q", k, penv[k], v)
		}
	}
	for k := range penv {
		_, fromServer := os.LookupEnv(k)
		if fromServer {
			continue
		}
		if (strings.HasPrefix(k, "VAULT_") && want[k] == "" && k != "VAULT_BACKEND_PLUGIN") || strings.HasPrefix(k, "BAO_") {
			t.Errorf("host set %s, which Vault does not set for this launch", k)
		}
	}
	if penv["PLUGIN_PROTOCOL_VERSIONS"] != "5" {
		t.Errorf("PLUGIN_PROTOCOL_VERSIONS = %q, want 5 (plugin.PluginSet)", penv["PLUGIN_PROTOCOL_VERSIONS"])
	}
	if penv["PLUGIN_CLIENT_CERT"] == "" {
		t.Error("PLUGIN_CLIENT_CERT missing: AutoMTLS was not used")
	}
	if _, set := penv["PLUGIN_MULTIPLEX_GRPC"]; set {
		t.Error("PLUGIN_MULTIPLEX_GRPC set: that is for container plugins only")
	}
	if penv[plugin.HandshakeConfig.MagicCookieKey] != plugin.HandshakeConfig.MagicCookieValue {
		t.Error("magic cookie missing")
	}
	if v := h.Client().NegotiatedVersion(); v != 5 {
		t.Errorf("negotiated protocol %d, want 5", v)
	}
	if !h.Multiplexed() {
		t.Error("the plugin did not report multiplexing support")
	}

	t.Run("legacy-layering", func(t *testing.T) {
		t.Setenv(pluginutil.PluginUseLegacyEnvLayering, "true")
		h := newHarness(t, "LITELLM_PLUGIN_WAL_MIN_AGE=1s")
		h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
		if got := processEnv(t, h.Pid())["LITELLM_PLUGIN_WAL_MIN_AGE"]; got != "1h" {
			t.Errorf("with %s=true LITELLM_PLUGIN_WAL_MIN_AGE = %q, want the server's 1h", pluginutil.PluginUseLegacyEnvLayering, got)
		}
	})
}

// A WAL entry written by HashiCorp's framework.PutWAL is undone by the plugin's rollback
// (the key is deleted in LiteLLM by its alias), once it is older than the minimum age the
// plugin got from the catalog env (1 s; the server env's 1 h would keep it). A younger entry
// stays until a rollback request says "immediate".
func TestWALRollbackRequest(t *testing.T) {
	t.Setenv("LITELLM_PLUGIN_WAL_MIN_AGE", "1h")
	h := newHarness(t, "LITELLM_PLUGIN_WAL_MIN_AGE=1s")
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	l := h.env.LiteLLM
	configure(t, m, l)
	prefix := uniquePrefix(t)
	trackLeases(t, m, l, prefix) // checks at the end that no key of this test is left

	oldAlias := prefix + "-dev-000000000001"
	oldToken, err := l.generate(oldAlias)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := framework.PutWAL(ctx(t), m.Storage, "litellm_key", map[string]any{"key_alias": oldAlias}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // CreatedAt has second resolution
	newAlias := prefix + "-dev-000000000002"
	newToken, err := l.generate(newAlias)
	if err != nil {
		t.Fatal(err)
	}
	newID, err := framework.PutWAL(ctx(t), m.Storage, "litellm_key", map[string]any{"key_alias": newAlias})
	if err != nil {
		t.Fatal(err)
	}

	// Vault's rollback manager: operation "rollback" on the mount's root.
	rb := func(data map[string]any) {
		req := logical.RollbackRequest("")
		req.Storage = m.Storage
		for k, v := range data {
			req.Data[k] = v
		}
		resp, err := m.Backend.HandleRequest(ctx(t), req)
		if status, shown := VaultHTTPStatus(req, resp, err); err != nil || (status != 0 && status != 404) {
			t.Fatalf("rollback: %d %v %v", status, shown, err)
		}
	}
	rb(nil)
	if l.live(t, oldToken) {
		t.Error("rollback left the key of the old WAL entry live in LiteLLM (min age from the server env instead of the catalog env?)")
	}
	ids, err := framework.ListWAL(ctx(t), m.Storage)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != newID {
		t.Errorf("WAL after rollback = %v, want only the young entry %s", ids, newID)
	}
	if !l.live(t, newToken) {
		t.Error("rollback deleted the key of a WAL entry younger than the minimum age")
	}

	rb(map[string]any{"immediate": true})
	if l.live(t, newToken) {
		t.Error("an immediate rollback left the young entry's key live")
	}
	if ids, _ := framework.ListWAL(ctx(t), m.Storage); len(ids) != 0 {
		t.Errorf("WAL after an immediate rollback = %v, want empty", ids)
	}
}

// Two mounts share one multiplexed process and stay apart: config, roles, storage and the
// keys they issue. Cleanup of one leaves the other serving; the last Cleanup ends the process
// gracefully.
func TestTwoMountsMultiplexedInOneProcess(t *testing.T) {
	h := newHarness(t)
	a := h.mount("litellm-a/", mountDefaultTTL, mountMaxTTL)
	b := h.mount("litellm-b/", 10*time.Minute, time.Hour)
	if n := h.Launches(); n != 1 {
		t.Fatalf("%d plugin processes for two mounts, want 1", n)
	}
	if !h.Multiplexed() {
		t.Fatal("MultiplexingSupport said false")
	}
	if pids := childPlugins(t, h.env.PluginBin); len(pids) != 1 {
		t.Fatalf("plugin processes running: %v, want exactly one", pids)
	}
	pid := h.Pid()
	l := h.env.LiteLLM
	pa, pb := uniquePrefix(t), uniquePrefix(t)
	la := trackLeases(t, a, l, pa)
	lb := trackLeases(t, b, l, pb)

	configure(t, a, l)
	ok(t, a, logical.CreateOperation, "roles/shared", map[string]any{"models": "fake-gpt", "ttl": "1h", "key_alias_prefix": pa})

	// b sees none of a's state.
	status := func(m *Mount, op logical.Operation, path string) int {
		req, resp, err := m.Handle(ctx(t), op, path, nil)
		s, _ := VaultHTTPStatus(req, resp, err)
		return s
	}
	if s := status(b, logical.ReadOperation, "config"); s != 404 {
		t.Errorf("b: read config = %d, want 404 (a's config leaked into b)", s)
	}
	if s := status(b, logical.ReadOperation, "roles/shared"); s != 404 {
		t.Errorf("b: read roles/shared = %d, want 404", s)
	}
	ok(t, b, logical.CreateOperation, "roles/shared", map[string]any{"models": "fake-claude", "ttl": "20m", "key_alias_prefix": pb})
	req, resp, err := b.Handle(ctx(t), logical.ReadOperation, "creds/shared", nil)
	if s, shown := VaultHTTPStatus(req, resp, err); s != 400 || !strings.Contains(shown.Error(), "config") {
		t.Errorf("b: creds before b's config = %d %v, want 400 naming the config", s, shown)
	}
	configure(t, b, l)

	// Both issue at once over the one connection.
	var wg sync.WaitGroup
	var ra, rb *logical.Response
	var ea, eb error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, ra, ea = a.Handle(context.Background(), logical.ReadOperation, "creds/shared", nil)
	}()
	go func() {
		defer wg.Done()
		_, rb, eb = b.Handle(context.Background(), logical.ReadOperation, "creds/shared", nil)
	}()
	wg.Wait()
	if ea != nil || eb != nil || ra == nil || rb == nil || ra.IsError() || rb.IsError() {
		t.Fatalf("concurrent creds: a=%v %v b=%v %v", ra, ea, rb, eb)
	}
	ta, tb := la.add("creds/shared", ra), lb.add("creds/shared", rb)
	if ra.Secret.TTL != time.Hour || rb.Secret.TTL != 20*time.Minute {
		t.Errorf("TTLs a=%v b=%v, want 1h and 20m (each mount's own role)", ra.Secret.TTL, rb.Secret.TTL)
	}
	for _, c := range []struct {
		m      *Mount
		token  string
		prefix string
		other  *Mount
	}{{a, ta, pa, b}, {b, tb, pb, a}} {
		ki, err := l.keyInfo(c.token)
		if err != nil {
			t.Fatal(err)
		}
		if ki.Metadata["vault_mount"] != c.m.Options.Path || !strings.HasPrefix(ki.Alias, c.prefix+"-") {
			t.Errorf("%s's key: vault_mount=%v alias=%s", c.m.Options.Path, ki.Metadata["vault_mount"], ki.Alias)
		}
		if e, _ := c.m.Storage.InmemStorage.Get(ctx(t), "keys/"+c.token); e == nil {
			t.Errorf("%s: its key is not in its own key index", c.m.Options.Path)
		}
		if e, _ := c.other.Storage.InmemStorage.Get(ctx(t), "keys/"+c.token); e != nil {
			t.Errorf("%s's key landed in %s's storage", c.m.Options.Path, c.other.Options.Path)
		}
	}

	// Revoke a's lease, then clean a up: b keeps serving from the same process.
	revoke := func(m *Mount, resp *logical.Response) {
		t.Helper()
		r := logical.RevokeRequest("creds/shared", resp.Secret, resp.Data)
		r.Storage = m.Storage
		if _, err := m.Backend.HandleRequest(ctx(t), r); err != nil {
			t.Fatalf("revoke on %s: %v", m.Options.Path, err)
		}
	}
	revoke(a, ra)
	la.revoked(ta)
	a.Backend.Cleanup(ctx(t))
	if h.Client().Exited() || h.Pid() != pid {
		t.Fatal("cleaning up one mount stopped the shared process")
	}
	if resp := ok(t, b, logical.ReadOperation, "roles/shared", nil); resp == nil || num(t, resp.Data["ttl"]) != 1200 {
		t.Errorf("b after a's cleanup: roles/shared = %v", resp)
	}
	revoke(b, rb)
	lb.revoked(tb)
	if l.live(t, ta) || l.live(t, tb) {
		t.Error("a revoked key is still live in LiteLLM")
	}

	// The last mount's Cleanup ends the process, gracefully (go-plugin force-kills after 2 s).
	start := time.Now()
	b.Backend.Cleanup(ctx(t))
	took := time.Since(start)
	if !h.Client().Exited() {
		t.Fatal("the process still runs after the last mount's cleanup")
	}
	if took > 2*time.Second || strings.Contains(h.logs.String(), "plugin failed to exit gracefully") {
		t.Errorf("the plugin did not exit gracefully on Cleanup + Kill (took %v)", took)
	}
	if pids := childPlugins(t, h.env.PluginBin); len(pids) != 0 {
		t.Errorf("plugin processes still running after cleanup: %v", pids)
	}
}

// Vault's registration probe: a v5 AutoMTLS launch, Dispense, Setup with an empty
// BackendConfig (no storage, no system view behind the broker), then Type and PluginVersion.
// And the v4 fallback probe (protocols 3 and 4, metadata mode), which a v5-only plugin must
// refuse without leaving a process behind.
func TestRegistrationProbes(t *testing.T) {
	h := newHarness(t)
	pc, err := h.newPluginClient(ctx(t), pluginutil.PluginClientConfig{
		Name: PluginName, PluginType: consts.PluginTypeSecrets, PluginSets: plugin.PluginSet,
		HandshakeConfig: plugin.HandshakeConfig, Logger: h.Logger, AutoMTLS: true,
		Wrapper: logical.StaticSystemView{VersionString: VaultVersion},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := plugin.Dispense(pc, pc)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(ctx(t), &logical.BackendConfig{}); err != nil {
		t.Fatalf("Setup with an empty BackendConfig: %v", err)
	}
	if ty := b.Type(); ty != logical.TypeLogical {
		t.Errorf("Type() = %v, want %v (a secrets engine)", ty, logical.TypeLogical)
	}
	v := b.(logical.PluginVersioner).PluginVersion().Version
	if !strings.HasPrefix(v, "v") || len(v) < 6 {
		t.Errorf("PluginVersion() = %q, want a v-prefixed semantic version", v)
	}
	t.Logf("plugin reports version %s", v)
	b.Cleanup(ctx(t))
	if !h.Client().Exited() {
		t.Error("the probe's process still runs after Cleanup")
	}

	t.Run("v4-metadata-probe-refused", func(t *testing.T) {
		_, err := plugin.NewPluginClient(ctx(t), logical.StaticSystemView{VersionString: VaultVersion}, h.Runner, h.Logger, true)
		if err == nil {
			t.Fatal("the v4 (protocols 3, 4) probe succeeded against a v5-only plugin")
		}
		t.Logf("v4 probe refused: %v", err)
		deadline := time.Now().Add(3 * time.Second)
		for len(childPlugins(t, h.env.PluginBin)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if pids := childPlugins(t, h.env.PluginBin); len(pids) != 0 {
			t.Errorf("plugin process left running after the refused probe: %v", pids)
		}
	})
}

// HashiCorp's host serves List/Get/Put/Delete on storage and none of OpenBao's additions.
// A whole lifecycle (config, role, creds, renew, revoke, list, rollback, tidy) works through
// it, the plugin logs no failed or unimplemented host call, and the only storage calls it made
// are those four.
func TestStorageWithoutOpenBaoAdditions(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	l := h.env.LiteLLM
	prefix := uniquePrefix(t)
	leases := trackLeases(t, m, l, prefix)
	configure(t, m, l)
	ok(t, m, logical.CreateOperation, "roles/dev", map[string]any{"models": "fake-gpt", "key_alias_prefix": prefix})
	ok(t, m, logical.ListOperation, "roles/", nil)
	resp := ok(t, m, logical.ReadOperation, "creds/dev", nil)
	token := leases.add("creds/dev", resp)
	secret := *resp.Secret
	secret.IssueTime = time.Now()
	r := logical.RenewRequest("creds/dev", &secret, resp.Data)
	r.Storage = m.Storage
	if _, err := m.Backend.HandleRequest(ctx(t), r); err != nil {
		t.Fatalf("renew: %v", err)
	}
	r = logical.RevokeRequest("creds/dev", &secret, resp.Data)
	r.Storage = m.Storage
	if _, err := m.Backend.HandleRequest(ctx(t), r); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	leases.revoked(token)
	rb := logical.RollbackRequest("")
	rb.Storage = m.Storage
	if _, err := m.Backend.HandleRequest(ctx(t), rb); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	ok(t, m, logical.UpdateOperation, "tidy", map[string]any{})

	calls := m.Storage.Calls()
	for op := range calls {
		switch op {
		case "List", "Get", "Put", "Delete":
		default:
			t.Errorf("unexpected storage operation %s", op)
		}
	}
	for _, op := range []string{"List", "Get", "Put", "Delete"} {
		if calls[op] == 0 {
			t.Errorf("the lifecycle made no %s call; the test no longer covers it", op)
		}
	}
	t.Logf("storage calls through the SDK's server: %v", calls)
	logs := strings.ToLower(h.logs.String())
	for _, bad := range []string{"unimplemented", "unknown service", "failed to", "panic"} {
		if strings.Contains(logs, bad) {
			t.Errorf("host log mentions %q", bad)
		}
	}
}
