// How a Go product checks an API key with tenant-registry and records what it did.
//
// A product (or its gateway) receives a request carrying a customer's API key. It asks the
// registry whether the key is good (POST /v1/internal/api-keys/verify, always 200 with
// {valid: true, ...} or {valid: false, code}), serves the request if so, and appends an audit
// event (POST /v1/audit) so the tenant can see it in their audit log.
//
// Standard library only, no module needed:
//
//	REGISTRY_URL=https://tenant-registry REGISTRY_TOKEN=$TOKEN go run verify.go bp_...
//
// Environment:
//
//	REGISTRY_URL      the registry's base URL (default http://localhost:8090)
//	REGISTRY_TOKEN    the product's service token: an OIDC access token from the client-credentials
//	                  grant of its Keycloak client (role `service`); optional against a dev
//	                  registry with authentication off. Reuse it until shortly before it expires.
//	REGISTRY_API_KEY  the API key to check, when not given as the first argument
//	REGISTRY_PRODUCT  the product being called (optional; defaults to the key's own product)
//
// Prints `verify: valid ...` and `audit: appended event_id=...`, exit 0; `verify: invalid CODE`,
// exit 1, for a key that must be refused; `error: ...`, exit 2, when the registry cannot answer.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// VerifyResult is the answer of POST /v1/internal/api-keys/verify (openapi.yaml: VerifyResult).
type VerifyResult struct {
	Valid      bool     `json:"valid"`
	Code       string   `json:"code,omitempty"`
	KeyID      string   `json:"key_id,omitempty"`
	TenantID   string   `json:"tenant_id,omitempty"`
	TenantSlug string   `json:"tenant_slug,omitempty"`
	Product    *string  `json:"product,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	ExpiresAt  *string  `json:"expires_at,omitempty"`
}

// AuditActor, AuditEvent: the body of POST /v1/audit and its answer (openapi.yaml: AuditEvent).
type AuditActor struct {
	ID   string `json:"id"`
	Type string `json:"type,omitempty"`
	Name string `json:"name,omitempty"`
}

type AuditEvent struct {
	ID          string            `json:"id,omitempty"`
	TenantID    string            `json:"tenant_id,omitempty"`
	Product     *string           `json:"product,omitempty"`
	Action      string            `json:"action"`
	Crud        string            `json:"crud,omitempty"`
	Actor       AuditActor        `json:"actor"`
	Description string            `json:"description,omitempty"`
	Fields      map[string]string `json:"fields,omitempty"`
}

// APIError is every error body of the registry: {code, message, issues?}.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Registry is a minimal client of the registry's REST API.
type Registry struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// call sends one JSON request and decodes a 2xx answer into out; it retries a 503 (honouring
// Retry-After) and network errors a few times. Non-2xx answers are returned as *APIError.
func (r *Registry) call(method, path string, body interface{}, headers map[string]string, out interface{}) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(method, r.BaseURL+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if r.Token != "" {
			req.Header.Set("Authorization", "Bearer "+r.Token)
		}
		for name, value := range headers {
			req.Header.Set(name, value)
		}
		res, err := r.HTTP.Do(req)
		if err != nil {
			if attempt < attempts {
				time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
				continue
			}
			return fmt.Errorf("cannot reach %s: %w", r.BaseURL, err)
		}
		data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if err != nil {
			return err
		}
		if res.StatusCode == http.StatusServiceUnavailable && attempt < attempts {
			wait, _ := strconv.Atoi(res.Header.Get("Retry-After"))
			if wait < 1 || wait > 5 {
				wait = 1
			}
			time.Sleep(time.Duration(wait) * time.Second)
			continue
		}
		if res.StatusCode < 200 || res.StatusCode > 299 {
			apiErr := &APIError{Status: res.StatusCode}
			if json.Unmarshal(data, apiErr) != nil || apiErr.Code == "" {
				apiErr.Code, apiErr.Message = "HTTP_"+strconv.Itoa(res.StatusCode), strings.TrimSpace(string(data))
			}
			return apiErr
		}
		return json.Unmarshal(data, out)
	}
}

// Verify asks whether key may be used (for product, when not empty).
func (r *Registry) Verify(key, product string) (*VerifyResult, error) {
	body := map[string]string{"key": key}
	if product != "" {
		body["product"] = product
	}
	var result VerifyResult
	if err := r.call(http.MethodPost, "/v1/internal/api-keys/verify", body, nil, &result); err != nil {
		// 401/403: this product's own credentials; 503: try again shortly. Never "valid".
		return nil, err
	}
	return &result, nil
}

// AppendAudit records one event; the same Idempotency-Key on a retry never records it twice.
func (r *Registry) AppendAudit(event AuditEvent) (*AuditEvent, error) {
	var created AuditEvent
	headers := map[string]string{"Idempotency-Key": randomKey()}
	if err := r.call(http.MethodPost, "/v1/audit", event, headers, &created); err != nil {
		return nil, err
	}
	return &created, nil
}

func randomKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func orDash(s *string, dash string) string {
	if s == nil || *s == "" {
		return dash
	}
	return *s
}

func run() int {
	key := os.Getenv("REGISTRY_API_KEY")
	if len(os.Args) > 1 {
		key = os.Args[1]
	}
	if key == "" {
		fmt.Fprintln(os.Stderr, "usage: go run verify.go API_KEY (or set REGISTRY_API_KEY)")
		return 2
	}
	baseURL := os.Getenv("REGISTRY_URL")
	if baseURL == "" {
		baseURL = "http://localhost:8090"
	}
	registry := &Registry{
		BaseURL: strings.TrimRight(baseURL, "/"),
		Token:   os.Getenv("REGISTRY_TOKEN"),
		HTTP:    &http.Client{Timeout: 5 * time.Second},
	}

	result, err := registry.Verify(key, os.Getenv("REGISTRY_PRODUCT"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: verify: %v\n", err)
		return 2
	}
	if !result.Valid {
		fmt.Printf("verify: invalid %s\n", result.Code)
		return 1
	}
	scopes := strings.Join(result.Scopes, ",")
	if scopes == "" {
		scopes = "-"
	}
	fmt.Printf("verify: valid key_id=%s tenant_id=%s tenant=%s product=%s scopes=%s expires_at=%s\n",
		result.KeyID, result.TenantID, result.TenantSlug, orDash(result.Product, "-"), scopes, orDash(result.ExpiresAt, "never"))

	event, err := registry.AppendAudit(AuditEvent{
		TenantID:    result.TenantID,
		Product:     result.Product,
		Action:      "api.request",
		Crud:        "r",
		Actor:       AuditActor{ID: result.KeyID, Type: "api_key"},
		Description: "request served with an API key",
		Fields:      map[string]string{"client": "go-example"},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: audit append: %v\n", err)
		return 2
	}
	fmt.Printf("audit: appended event_id=%s action=%s\n", event.ID, event.Action)
	return 0
}

func main() {
	os.Exit(run())
}
