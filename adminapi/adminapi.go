// Package adminapi is the client API of tokengate on Caddy's admin
// endpoint (module admin.api.tokengate), so that it has the endpoint's
// listener, origin checks and remote-admin access control:
//
//	GET    /tokengate/issuers/<issuer>/clients                     list
//	POST   /tokengate/issuers/<issuer>/clients                     create (answer adds client_secret, once)
//	GET    /tokengate/issuers/<issuer>/clients/<id>                read
//	PUT    /tokengate/issuers/<issuer>/clients/<id>                update
//	DELETE /tokengate/issuers/<issuer>/clients/<id>                delete
//	POST   /tokengate/issuers/<issuer>/clients/<id>/rotate-secret  {"grace": "24h"} optional
//	POST   /tokengate/issuers/<issuer>/clients/<id>/disable
//	POST   /tokengate/issuers/<issuer>/clients/<id>/enable
//	POST   /tokengate/issuers/<issuer>/clients/<id>/revoke-tokens
//
// A client's JSON is a configured client's (internal/clients.Config)
// without secrets; unknown fields are refused. Mistakes are 400 with
// {"error": …, "field": …}, nothing changed; an unknown issuer or client
// 404; a change the API may not make (a configured client's definition, an
// id in use) 409. Every change is logged at info level (operation, issuer,
// client id, the request's remote address; never a secret) and counted in
// tokengate_client_changes_total by operation.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/issuer"
)

func init() {
	caddy.RegisterModule(API{})
}

// Base is the path of the API on the admin endpoint.
const Base = "/tokengate/"

// MaxBody bounds a request body, in bytes.
const MaxBody = 64 << 10

// API is the admin.api.tokengate module.
type API struct {
	logger *zap.Logger
	// issuers finds the running config's issuers; tests replace it.
	issuers func() (issuer.Provider, error)
}

// CaddyModule returns the Caddy module information.
func (API) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tokengate",
		New: func() caddy.Module { return new(API) },
	}
}

// Provision sets the module up; the issuers are found at each request, in
// the config running then, so the API follows config reloads.
func (a *API) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	a.issuers = activeIssuers
	return nil
}

func activeIssuers() (issuer.Provider, error) {
	app, err := caddy.ActiveContext().AppIfConfigured(issuer.AppName)
	if err != nil {
		return nil, errors.New("no oauth_issuer is configured")
	}
	p, ok := app.(issuer.Provider)
	if !ok {
		return nil, fmt.Errorf("the %s app is %T", issuer.AppName, app)
	}
	return p, nil
}

// Routes returns the API's route on the admin endpoint.
func (a *API) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: Base, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// apiError is an answer of the API other than success.
type apiError struct {
	status int
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
}

func fail(status int, format string, args ...any) *apiError {
	return &apiError{status: status, Error: fmt.Sprintf(format, args...)}
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) error {
	status, body, ae := a.route(r)
	if ae != nil {
		status, body = ae.status, ae
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return nil
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(body)
}

// route finds what a request asks for and does it.
func (a *API) route(r *http.Request) (int, any, *apiError) {
	// .../issuers/<issuer>/clients[/<id>[/<action>]]
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, Base), "/")
	if len(parts) < 3 || len(parts) > 5 || parts[0] != "issuers" || parts[1] == "" || parts[2] != "clients" {
		return 0, nil, fail(http.StatusNotFound, "not found: %s", r.URL.Path)
	}
	prov, err := a.issuers()
	if err != nil {
		return 0, nil, fail(http.StatusNotFound, "%v", err)
	}
	iss, err := prov.Issuer(parts[1])
	if err != nil {
		return 0, nil, fail(http.StatusNotFound, "%v", err)
	}
	reg := iss.Clients
	op := &change{api: a, r: r, iss: iss}
	switch {
	case len(parts) == 3 || (len(parts) == 4 && parts[3] == ""):
		switch r.Method {
		case http.MethodGet:
			return http.StatusOK, reg.List(), nil
		case http.MethodPost:
			return op.create()
		}
		return 0, nil, notAllowed(r, "GET, POST")
	case len(parts) == 4:
		op.id = parts[3]
		switch r.Method {
		case http.MethodGet:
			v, ok := reg.View(op.id)
			if !ok {
				return 0, nil, fail(http.StatusNotFound, "no client %q", op.id)
			}
			return http.StatusOK, v, nil
		case http.MethodPut:
			return op.replace()
		case http.MethodDelete:
			return op.delete()
		}
		return 0, nil, notAllowed(r, "GET, PUT, DELETE")
	default:
		op.id = parts[3]
		if r.Method != http.MethodPost {
			return 0, nil, notAllowed(r, "POST")
		}
		switch parts[4] {
		case "rotate-secret":
			return op.rotate()
		case "disable":
			return op.state("disable", reg.Disable)
		case "enable":
			return op.state("enable", reg.Enable)
		case "revoke-tokens":
			return op.state("revoke_tokens", reg.RevokeTokens)
		}
	}
	return 0, nil, fail(http.StatusNotFound, "not found: %s", r.URL.Path)
}

func notAllowed(r *http.Request, allow string) *apiError {
	return fail(http.StatusMethodNotAllowed, "method %s not allowed (%s)", r.Method, allow)
}

// readBody reads a request body of at most MaxBody bytes.
func readBody(r *http.Request) ([]byte, *apiError) {
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, fail(http.StatusBadRequest, "reading the body: %v", err)
	}
	if len(data) > MaxBody {
		return nil, fail(http.StatusBadRequest, "body larger than %d bytes", MaxBody)
	}
	return data, nil
}

// stateError turns a registry error into an answer.
func stateError(err error) *apiError {
	var oe *clients.OptionError
	switch {
	case errors.As(err, &oe):
		return &apiError{status: http.StatusBadRequest, Error: oe.Error(), Field: oe.Option}
	case errors.Is(err, clients.ErrNotFound):
		return fail(http.StatusNotFound, "%v", err)
	case errors.Is(err, clients.ErrExists), errors.Is(err, clients.ErrConfigured):
		return fail(http.StatusConflict, "%v", err)
	}
	return fail(http.StatusInternalServerError, "%v", err)
}

// change is one change request, for the audit log.
type change struct {
	api *API
	r   *http.Request
	iss *issuer.Issuer
	id  string
}

// done logs a change that was made.
func (c *change) done(op string) {
	c.api.logger.Info("client changed",
		zap.String("operation", op),
		zap.String("issuer", c.iss.Name),
		zap.String("client_id", c.id),
		zap.String("remote_addr", c.r.RemoteAddr))
}

// decode reads a client from the body.
func (c *change) decode() (*clients.Config, *apiError) {
	data, ae := readBody(c.r)
	if ae != nil {
		return nil, ae
	}
	cfg, err := clients.DecodeConfig(data)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "%v", err)
	}
	return cfg, nil
}

func (c *change) create() (int, any, *apiError) {
	cfg, ae := c.decode()
	if ae != nil {
		return 0, nil, ae
	}
	c.id = cfg.ClientID
	secret, err := c.iss.Clients.Create(c.r.Context(), cfg)
	if err != nil {
		return 0, nil, stateError(err)
	}
	c.done("create")
	return c.withSecret(http.StatusCreated, secret)
}

// withSecret answers the client's view with its new secret added.
func (c *change) withSecret(status int, secret string) (int, any, *apiError) {
	v, _ := c.iss.Clients.View(c.id)
	data, err := json.Marshal(v)
	if err != nil {
		return 0, nil, fail(http.StatusInternalServerError, "%v", err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, nil, fail(http.StatusInternalServerError, "%v", err)
	}
	out["client_secret"], _ = json.Marshal(secret)
	return status, out, nil
}

func (c *change) replace() (int, any, *apiError) {
	cfg, ae := c.decode()
	if ae != nil {
		return 0, nil, ae
	}
	switch cfg.ClientID {
	case "":
		cfg.ClientID = c.id
	case c.id:
	default:
		return 0, nil, &apiError{status: http.StatusBadRequest, Error: "client_id differs from the path's", Field: "client_id"}
	}
	if err := c.iss.Clients.Replace(c.r.Context(), cfg); err != nil {
		return 0, nil, stateError(err)
	}
	c.done("update")
	v, _ := c.iss.Clients.View(c.id)
	return http.StatusOK, v, nil
}

func (c *change) delete() (int, any, *apiError) {
	if err := c.iss.Clients.Delete(c.r.Context(), c.id); err != nil {
		return 0, nil, stateError(err)
	}
	c.done("delete")
	return http.StatusNoContent, nil, nil
}

// rotateRequest is the optional body of rotate-secret.
type rotateRequest struct {
	// Grace is how long the replaced secrets stay valid, as a Caddy
	// duration ("24h", "90m", "0s"). Default: 24h.
	Grace *caddy.Duration `json:"grace,omitempty"`
}

func (c *change) rotate() (int, any, *apiError) {
	data, ae := readBody(c.r)
	if ae != nil {
		return 0, nil, ae
	}
	grace := clients.DefaultGrace
	if len(strings.TrimSpace(string(data))) > 0 {
		var req rotateRequest
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return 0, nil, &apiError{status: http.StatusBadRequest, Error: "decoding body: " + strings.TrimPrefix(err.Error(), "json: "), Field: "grace"}
		}
		if req.Grace != nil {
			grace = time.Duration(*req.Grace)
		}
	}
	secret, err := c.iss.Clients.RotateSecret(c.r.Context(), c.id, grace)
	if err != nil {
		return 0, nil, stateError(err)
	}
	c.done("rotate_secret")
	return c.withSecret(http.StatusOK, secret)
}

func (c *change) state(op string, do func(ctx context.Context, id string) error) (int, any, *apiError) {
	if _, ae := readBody(c.r); ae != nil {
		return 0, nil, ae
	}
	if err := do(c.r.Context(), c.id); err != nil {
		return 0, nil, stateError(err)
	}
	c.done(op)
	v, _ := c.iss.Clients.View(c.id)
	return http.StatusOK, v, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*API)(nil)
	_ caddy.Provisioner = (*API)(nil)
)
