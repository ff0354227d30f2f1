package vaultsdk

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// help on the mount's root and on a path, and the OpenAPI document Vault builds
// sys/internal/specs/openapi from, decoded with the SDK's own framework.NewOASDocumentFromMap.
func TestHelpAndOpenAPIDocument(t *testing.T) {
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)

	// What Vault's sys/internal/specs/openapi sends each mount.
	req := m.Request(logical.HelpOperation, "", map[string]any{"requestResponsePrefix": "litellm", "genericMountPaths": false})
	resp, err := m.Backend.HandleRequest(ctx(t), req)
	if status, shown := VaultHTTPStatus(req, resp, err); err != nil || status != 0 {
		t.Fatalf("root help: %d %v %v", status, shown, err)
	}
	help, _ := resp.Data["help"].(string)
	for _, want := range []string{"LiteLLM", "creds/", "roles/", "config"} {
		if !strings.Contains(help, want) {
			t.Errorf("root help does not mention %q", want)
		}
	}
	raw, ok := resp.Data["openapi"].(map[string]any)
	if !ok {
		t.Fatalf("help response has no openapi document (%T)", resp.Data["openapi"])
	}
	doc, err := framework.NewOASDocumentFromMap(raw)
	if err != nil {
		t.Fatalf("framework.NewOASDocumentFromMap: %v", err)
	}
	if !strings.HasPrefix(doc.Version, "3.") {
		t.Errorf("openapi version %q", doc.Version)
	}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	t.Logf("OpenAPI paths: %v", paths)

	type ops struct{ get, post, del bool }
	want := map[string]ops{
		"/config":           {get: true, post: true, del: true},
		"/roles/{name}":     {get: true, post: true, del: true},
		"/creds/{name}":     {get: true, post: true},
		"/rotate-root":      {post: true},
		"/tidy":             {post: true},
		"/roles/":           {get: true},
		"/config/auto-tidy": {get: true, post: true},
	}
	for p, w := range want {
		item := doc.Paths[p]
		if item == nil {
			t.Errorf("OpenAPI document lacks %s", p)
			continue
		}
		got := ops{item.Get != nil, item.Post != nil, item.Delete != nil}
		if got != w {
			t.Errorf("%s operations get/post/delete = %v, want %v", p, got, w)
		}
		for _, op := range []*framework.OASOperation{item.Get, item.Post, item.Delete} {
			if op != nil && len(op.Responses) == 0 {
				t.Errorf("%s: an operation without responses", p)
			}
		}
	}
	if item := doc.Paths["/roles/{name}"]; item != nil {
		if len(item.Parameters) != 1 || item.Parameters[0].Name != "name" || item.Parameters[0].In != "path" {
			t.Errorf("/roles/{name} parameters = %+v, want the path parameter name", item.Parameters)
		}
	}
	if item := doc.Paths["/roles/"]; item != nil && item.Get != nil {
		listed := false
		for _, p := range item.Get.Parameters {
			listed = listed || (p.Name == "list" && p.In == "query")
		}
		if !listed {
			t.Error("/roles/ get has no list=true query parameter")
		}
	}

	// The config body schema, through its $ref into components. The SDK's decoder drops
	// "$ref" (OASSchema.Ref has a json tag but no mapstructure tag), for Go plugins' documents
	// just the same (TestOpenAPIRefDecodingMatchesGoFramework), so the ref is read from the
	// raw document and resolved in the decoded components.
	ref := rawRef(raw, "/config")
	if ref == "" {
		t.Fatal("/config post has no request body schema $ref")
	}
	schema := doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
	if schema == nil {
		t.Fatalf("%s does not resolve in the decoded components.schemas", ref)
	}
	for _, f := range []string{"base_url", "master_key", "request_timeout", "verify_connection"} {
		if schema.Properties[f] == nil {
			t.Errorf("config schema lacks %s", f)
		}
	}
	if mk := schema.Properties["master_key"]; mk != nil && (mk.DisplayAttrs == nil || !mk.DisplayAttrs.Sensitive) {
		t.Error("master_key is not marked sensitive (x-vault-displayAttrs.sensitive)")
	}

	// Help on one path, as `vault path-help litellm/creds/x` asks it.
	req = m.Request(logical.HelpOperation, "creds/x", nil)
	resp, err = m.Backend.HandleRequest(ctx(t), req)
	if err != nil || resp == nil {
		t.Fatalf("creds help: %v", err)
	}
	help, _ = resp.Data["help"].(string)
	if !strings.Contains(help, "Issue a LiteLLM virtual key") || !strings.Contains(help, "ttl") {
		t.Errorf("creds help lacks the synopsis or the ttl field:\n%s", help)
	}
	if raw, ok := resp.Data["openapi"].(map[string]any); ok {
		doc, err := framework.NewOASDocumentFromMap(raw)
		if err != nil || doc.Paths["/creds/{name}"] == nil {
			t.Errorf("creds help's openapi: %v, paths %v", err, doc)
		}
	}
}

// rawRef is the $ref of path's post request body in an undecoded OpenAPI document.
func rawRef(doc map[string]any, path string) string {
	get := func(v any, k string) any {
		m, _ := v.(map[string]any)
		return m[k]
	}
	v := get(get(get(get(get(get(get(doc, "paths"), path), "post"), "requestBody"), "content"), "application/json"), "schema")
	ref, _ := get(v, "$ref").(string)
	return ref
}

// The SDK's framework.NewOASDocumentFromMap, which Vault uses for external plugins' documents,
// loses request bodies' "$ref" for a document made by HashiCorp's own Go framework too: a
// host-side property, not a difference of the Rust plugin.
func TestOpenAPIRefDecodingMatchesGoFramework(t *testing.T) {
	noop := func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
		return nil, nil
	}
	gob := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern:    "config",
			Fields:     map[string]*framework.FieldSchema{"base_url": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: &framework.PathOperation{Callback: noop}},
		}},
	}
	if err := gob.Setup(context.Background(), &logical.BackendConfig{System: logical.StaticSystemView{PluginEnvironment: &logical.PluginEnvironment{VaultVersion: VaultVersion}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := gob.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Data: map[string]any{"requestResponsePrefix": "gotest"}})
	if err != nil {
		t.Fatal(err)
	}
	native, ok := resp.Data["openapi"].(*framework.OASDocument)
	if !ok {
		t.Fatalf("Go framework help: openapi is %T", resp.Data["openapi"])
	}
	nativeRef := native.Paths["/config"].Post.RequestBody.Content["application/json"].Schema.Ref
	// What crosses the plugin boundary is JSON (pb translation); the host decodes it so.
	b, _ := json.Marshal(native)
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if rawRef(raw, "/config") != nativeRef || nativeRef == "" {
		t.Fatalf("Go framework's $ref %q did not survive JSON (%q)", nativeRef, rawRef(raw, "/config"))
	}
	decoded, err := framework.NewOASDocumentFromMap(raw)
	if err != nil {
		t.Fatal(err)
	}
	goRef := decoded.Paths["/config"].Post.RequestBody.Content["application/json"].Schema.Ref

	// The Rust plugin's document through the same decoder.
	h := newHarness(t)
	m := h.mount("litellm/", mountDefaultTTL, mountMaxTTL)
	rresp, err := m.Backend.HandleRequest(ctx(t), m.Request(logical.HelpOperation, "", map[string]any{"requestResponsePrefix": "litellm"}))
	if err != nil {
		t.Fatal(err)
	}
	rraw, _ := rresp.Data["openapi"].(map[string]any)
	rdoc, err := framework.NewOASDocumentFromMap(rraw)
	if err != nil {
		t.Fatal(err)
	}
	rustRef := rdoc.Paths["/config"].Post.RequestBody.Content["application/json"].Schema.Ref
	if goRef != rustRef {
		t.Errorf("decoded $ref: Go framework document %q, Rust plugin document %q: the host treats them differently", goRef, rustRef)
	}
	t.Logf("$ref before decoding: Go %q, Rust %q; after framework.NewOASDocumentFromMap: Go %q, Rust %q", nativeRef, rawRef(rraw, "/config"), goRef, rustRef)
}
