package tokengate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/adminapi"
	"github.com/tokengate/tokengate/internal/issuer"
)

// addClientCommands gives `caddy oauth-client` its subcommands, which
// manage clients at run time through the client API on Caddy's admin
// endpoint (docs/clients-api.md). The command without a subcommand still
// prints a client block for the config, offline.
func addClientCommands(parent *cobra.Command) {
	type sub struct {
		name, short string
		args        int // 1: takes a client id
		method      string
		action      string // path below the client, "" for the client itself
		flags       func(*cobra.Command)
		body        func(caddycmd.Flags) (io.Reader, error)
	}
	subs := []sub{
		{name: "list", short: "Lists the clients of an issuer", method: http.MethodGet},
		{name: "show", short: "Shows a client", args: 1, method: http.MethodGet},
		{name: "create", short: "Creates a client at run time and prints its secret, once", method: http.MethodPost,
			flags: func(c *cobra.Command) {
				clientFlags(c, "Client id (letters, digits, - . _ ~)")
				fs := c.Flags()
				fs.String("token-ttl", "", "Lifetime of the client's access tokens (default: the issuer's)")
				fs.Bool("introspect-any", false, "May introspect any client's tokens")
				fs.StringArray("claim", nil, "A claim of the client's tokens, name=value; the value is JSON if it reads as JSON (repeatable)")
			},
			body: createBody},
		{name: "rotate-secret", short: "Gives a client a new secret, printed once; the old one stays valid for --grace", args: 1,
			method: http.MethodPost, action: "/rotate-secret",
			flags: func(c *cobra.Command) {
				c.Flags().String("grace", "", "How long the old secret stays valid (default 24h; 0s: not at all)")
			},
			body: func(fl caddycmd.Flags) (io.Reader, error) {
				if g := fl.String("grace"); g != "" {
					if _, err := caddy.ParseDuration(g); err != nil {
						return nil, fmt.Errorf("--grace: %v", err)
					}
					return jsonBody(map[string]string{"grace": g})
				}
				return nil, nil
			}},
		{name: "disable", short: "Refuses a client and every token it holds, on every instance", args: 1, method: http.MethodPost, action: "/disable"},
		{name: "enable", short: "Lets a disabled client get tokens again", args: 1, method: http.MethodPost, action: "/enable"},
		{name: "revoke-tokens", short: "Refuses every token a client holds now", args: 1, method: http.MethodPost, action: "/revoke-tokens"},
		{name: "delete", short: "Deletes a client made at run time; its tokens are refused", args: 1, method: http.MethodDelete},
	}
	for _, s := range subs {
		c := &cobra.Command{
			Use:   s.name,
			Short: s.short,
			Long: s.short + `, through the client API on Caddy's admin endpoint
(docs/clients-api.md). The endpoint is --address, else the one of the
config given by --config, else Caddy's default (localhost:2019), as for
caddy reload. The API's JSON answer is printed on stdout.`,
			Args: cobra.ExactArgs(s.args),
		}
		if s.args == 1 {
			c.Use += " <client_id>"
		}
		fs := c.Flags()
		fs.String("address", "", "The address of Caddy's admin endpoint, if not the default")
		fs.String("config", "", "Configuration file to read the admin address from, if --address is not used")
		fs.String("adapter", "", "Name of config adapter to apply (when --config is used)")
		fs.String("issuer", issuer.DefaultName, "The name of the oauth_issuer")
		if s.flags != nil {
			s.flags(c)
		}
		c.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			path := ""
			if s.args == 1 {
				path = "/" + url.PathEscape(fl.Arg(0)) + s.action
			}
			var body io.Reader
			if s.body != nil {
				var err error
				if body, err = s.body(fl); err != nil {
					return caddy.ExitCodeFailedStartup, err
				}
			}
			return clientAPIRequest(fl, s.method, path, body, c.OutOrStdout(), c.ErrOrStderr())
		})
		parent.AddCommand(c)
	}
}

func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	return bytes.NewReader(b), err
}

// createBody is the client the create subcommand's flags describe.
func createBody(fl caddycmd.Flags) (io.Reader, error) {
	id := fl.String("id")
	if err := checkClientID(id); err != nil {
		return nil, err
	}
	c := map[string]any{"client_id": id}
	if scopes := strings.FieldsFunc(fl.String("scopes"), isListSep); len(scopes) > 0 {
		c["scopes"] = scopes
	}
	aud, err := fl.GetStringArray("audience")
	if err != nil {
		return nil, err
	}
	var audience []string
	for _, a := range aud {
		audience = append(audience, strings.FieldsFunc(a, isListSep)...)
	}
	if len(audience) > 0 {
		c["audience"] = audience
	}
	if fl.Bool("refresh") {
		c["grant_types"] = []string{"client_credentials", "refresh_token"}
	}
	if ttl := fl.String("token-ttl"); ttl != "" {
		if _, err := caddy.ParseDuration(ttl); err != nil {
			return nil, fmt.Errorf("--token-ttl: %v", err)
		}
		c["token_ttl"] = ttl
	}
	if fl.Bool("introspect-any") {
		c["introspect_any"] = true
	}
	claimArgs, err := fl.GetStringArray("claim")
	if err != nil {
		return nil, err
	}
	if len(claimArgs) > 0 {
		claims := map[string]json.RawMessage{}
		for _, a := range claimArgs {
			name, value, ok := strings.Cut(a, "=")
			if !ok || name == "" {
				return nil, fmt.Errorf("--claim: %q is not name=value", a)
			}
			claims[name] = claimValue(value)
		}
		c["claims"] = claims
	}
	return jsonBody(c)
}

// clientFlags defines the flags that describe a new client, the same for
// the client block printed offline and for a client created at run time.
func clientFlags(c *cobra.Command, idHelp string) {
	fs := c.Flags()
	fs.String("id", "", idHelp)
	fs.String("scopes", "", "Scopes the client may ask for, separated by commas or spaces")
	fs.StringArray("audience", nil, "Audience of the client's tokens, separated by commas or spaces (repeatable)")
	fs.Bool("refresh", false, "Allow the refresh_token grant")
}

func isListSep(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }

// clientAPIRequest sends one request to the client API and prints the
// answer.
func clientAPIRequest(fl caddycmd.Flags, method, path string, body io.Reader, stdout, stderr io.Writer) (int, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("finding the admin endpoint: %v", err)
	}
	uri := adminapi.Base + "issuers/" + url.PathEscape(fl.String("issuer")) + "/clients" + path
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, body)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return caddy.ExitCodeSuccess, nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		out.Reset()
		out.Write(data)
	}
	if bytes.Contains(data, []byte(`"client_secret"`)) {
		fmt.Fprintln(stderr, "The client_secret is shown only this once: store it now. The server keeps only its hash.")
	}
	_, err = stdout.Write(out.Bytes())
	return caddy.ExitCodeSuccess, err
}
