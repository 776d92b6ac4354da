package tokengate

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/tokengate/tokengate/internal/accesstoken"
	"github.com/tokengate/tokengate/internal/clients"
	"github.com/tokengate/tokengate/internal/localissuer"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "oauth-client",
		Usage: "[--id <client_id>] [--scopes <scopes>] [--audience <aud>] [--refresh] [--algorithm bcrypt|argon2id] [--bcrypt-cost <n>] [--json]",
		Short: "Makes a new OAuth client: its id, secret and Caddyfile block",
		Long: `
Makes a new client for an oauth_issuer: a client id, a random secret of 256
bits, and the client { ... } block to paste into the oauth_issuer global
option. Only the secret's hash goes into the block: the secret itself is
printed this once and cannot be recovered.

--id
    The client id. Default: a random one (client-<16 hex digits>). Ids are
    made of letters, digits and - . _ ~ so that they need no escaping in
    HTTP Basic credentials, form bodies or the Caddyfile.

--scopes
    The scopes the client may ask for, separated by commas or spaces.

--audience
    The "aud" of the client's tokens (default: the issuer URL). Separated by
    commas or spaces; the flag may be repeated.

--refresh
    Allow the refresh_token grant as well as client_credentials.

--algorithm
    bcrypt (default) or argon2id, with the parameters caddy hash-password
    uses by default.

--bcrypt-cost
    The bcrypt cost, 4 to 31. Default 14, as caddy hash-password. Keep one
    cost for all clients of an issuer: an unknown client id is checked at
    the cost of the first hashed client.

--json
    Print {"client_id", "client_secret", "secret_hash", "caddyfile"} as
    JSON instead of text, for scripts.

Subcommands manage clients of a running Caddy instead, through the client
API on its admin endpoint (--address, as caddy reload): create, list,
show, rotate-secret, disable, enable, revoke-tokens, delete. See
caddy oauth-client <subcommand> --help.
`,
		CobraFunc: func(cmd *cobra.Command) {
			clientFlags(cmd, "Client id (default: random)")
			fs := cmd.Flags()
			fs.StringP("algorithm", "a", "bcrypt", "Secret hash algorithm: bcrypt or argon2id")
			fs.Int("bcrypt-cost", defaultBcryptCost, "bcrypt cost (4 to 31)")
			fs.Bool("json", false, "Print JSON for scripts")
			cmd.Args = cobra.NoArgs
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
				return cmdOAuthClient(fl, cmd.OutOrStdout())
			})
			addClientCommands(cmd)
		},
	})

	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "oauth-token",
		Usage: "--id <client_id> [--secret <secret> | --secret-env <NAME>] [--url <issuer or token endpoint>] [--scope <scopes>] [--resource <uri>]",
		Short: "Gets an access token from an oauth_issuer (client_credentials)",
		Long: `
Asks a token endpoint for an access token with the client_credentials grant
and prints its JSON answer, to test a route guarded by bearer_auth. The
client authenticates with HTTP Basic (client_secret_basic), its id and secret
form-encoded as RFC 6749 section 2.3.1 says. An answer other than 200 is
printed to stderr and the command exits with status 1.

--url
    The issuer URL (/oauth/token is appended) or the full token endpoint
    URL. Default: http://localhost:8381. Redirects are not followed.

--id
    The client id. Required.

--secret, --secret-env
    The client secret, or the name of an environment variable holding it
    (which keeps it out of shell history). With neither, the secret is read
    from stdin (without echo on a terminal).

--scope
    The scopes to ask for, separated by commas or spaces. Default: all of the
    client's scopes.

--resource
    An RFC 8707 resource indicator narrowing the token's audience
    (repeatable).
`,
		CobraFunc: func(cmd *cobra.Command) {
			fs := cmd.Flags()
			fs.String("url", defaultIssuerURL, "Issuer URL or token endpoint URL")
			fs.String("id", "", "Client id")
			fs.String("secret", "", "Client secret")
			fs.String("secret-env", "", "Name of an environment variable holding the client secret")
			fs.String("scope", "", "Scopes to ask for, separated by commas or spaces")
			fs.StringArray("resource", nil, "Resource indicator (repeatable)")
			cmd.Args = cobra.NoArgs
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
				return cmdOAuthToken(fl, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	})
}

const (
	// defaultBcryptCost is caddy hash-password's default (caddyauth's
	// unexported defaultBcryptCost; a test ties the two).
	defaultBcryptCost = 14
	// secretBytes of randomness in a client secret: 256 bits.
	secretBytes      = 32
	defaultIssuerURL = "http://localhost:8381"
	tokenPath        = "/oauth/token"
	tokenTimeout     = 10 * time.Second
	maxAnswerBytes   = 1 << 20
)

// newClient is what oauth-client prints (as JSON with --json).
type newClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	SecretHash   string `json:"secret_hash"`
	Caddyfile    string `json:"caddyfile"`
}

func cmdOAuthClient(fl caddycmd.Flags, stdout io.Writer) (int, error) {
	id := fl.String("id")
	if fl.Changed("id") {
		if err := checkClientID(id); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	} else {
		id = "client-" + hex.EncodeToString(randomBytes(8))
	}
	scopes, err := caddyfileValues("scopes", []string{fl.String("scopes")})
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	audArgs, err := fl.GetStringArray("audience")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	audience, err := caddyfileValues("audience", audArgs)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	hash, err := hasherFor(fl.String("algorithm"), fl.Int("bcrypt-cost"), fl.Changed("bcrypt-cost"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	// base64url: only unreserved characters, so the secret reads the same
	// raw (`echo -n id:secret | base64`) and form-encoded (RFC 6749 §2.3.1).
	secret := base64.RawURLEncoding.EncodeToString(randomBytes(secretBytes))
	hashed, err := hash([]byte(secret))
	if err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("hashing the secret: %v", err)
	}

	c := newClient{
		ClientID:     id,
		ClientSecret: secret,
		SecretHash:   string(hashed),
		Caddyfile:    clientBlock(id, string(hashed), scopes, audience, fl.Bool("refresh")),
	}

	if fl.Bool("json") {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(c); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		return caddy.ExitCodeSuccess, nil
	}
	_, err = fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\n\n"+
		"The secret is shown only this once: store it now. The Caddyfile keeps only its hash.\n"+
		"Paste this into your oauth_issuer { … } global option:\n\n%s",
		c.ClientID, c.ClientSecret, c.Caddyfile)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// clientBlock is the client's block of the oauth_issuer global option; its
// values are checked by checkClientID and caddyfileValues.
func clientBlock(id, hash string, scopes, audience []string, refresh bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "client %s {\n\tsecret_hash %s\n", id, hash)
	if len(scopes) > 0 {
		fmt.Fprintf(&b, "\tscopes %s\n", strings.Join(scopes, " "))
	}
	if len(audience) > 0 {
		fmt.Fprintf(&b, "\taudience %s\n", strings.Join(audience, " "))
	}
	if refresh {
		fmt.Fprintf(&b, "\tgrant_types %s %s\n", clients.GrantClientCredentials, clients.GrantRefreshToken)
	}
	b.WriteString("}\n")
	return b.String()
}

// checkClientID accepts RFC 3986 unreserved characters only: such an id
// needs no escaping in raw or form-encoded Basic credentials, in form
// bodies, or in the Caddyfile, and cannot contain the ':' that ends the
// user part of Basic credentials.
func checkClientID(id string) error {
	if id == "" {
		return errors.New("--id: empty client id")
	}
	if len(id) > 255 {
		return errors.New("--id: client id longer than 255 characters")
	}
	for _, r := range id {
		if !isUnreserved(r) {
			return fmt.Errorf("--id: %q: a client id may contain only letters, digits and - . _ ~ (found %q)", id, r)
		}
	}
	return nil
}

func isUnreserved(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '-' || r == '.' || r == '_' || r == '~'
}

// caddyfileValues splits flag values at commas and white space, drops
// duplicates, and checks each is an RFC 6749 scope-token (printable ASCII
// but '"' and '\') that the Caddyfile reads back unchanged: no braces
// (blocks, {$ENV} and {placeholders}), no backquote, and no leading '#'
// (a comment) or '<' (a heredoc).
func caddyfileValues(flag string, args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, arg := range args {
		for _, v := range strings.FieldsFunc(arg, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			if !accesstoken.ValidScopeToken(v) {
				return nil, fmt.Errorf("--%s: %q: only printable ASCII other than '\"' and '\\' is allowed", flag, v)
			}
			if strings.ContainsAny(v, "{}`") || v[0] == '#' || v[0] == '<' {
				return nil, fmt.Errorf("--%s: %q cannot be written in a Caddyfile as is (braces, backquotes, or a leading # or <); use the JSON config for it", flag, v)
			}
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// hasherFor returns the secret hash function for an algorithm, with the
// parameters `caddy hash-password` uses by default, in the formats
// caddyauth's comparers (and so the client registry) read.
func hasherFor(algorithm string, bcryptCost int, costGiven bool) (func([]byte) ([]byte, error), error) {
	switch algorithm {
	case "bcrypt":
		if bcryptCost < bcrypt.MinCost || bcryptCost > bcrypt.MaxCost {
			return nil, fmt.Errorf("--bcrypt-cost: %d is outside %d to %d", bcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
		}
		// caddyauth.BcryptHash.Hash makes the same call, but its cost field
		// is unexported (always 14 from outside the package).
		return func(p []byte) ([]byte, error) { return bcrypt.GenerateFromPassword(p, bcryptCost) }, nil
	case "argon2id":
		if costGiven {
			return nil, errors.New("--bcrypt-cost applies to --algorithm bcrypt only")
		}
		return argon2idHash, nil
	}
	return nil, fmt.Errorf("--algorithm: unknown algorithm %q (bcrypt, argon2id)", algorithm)
}

// argon2idHash hashes with caddy hash-password's default Argon2id
// parameters, in the PHC format caddyauth.Argon2idHash.Compare reads. It
// does not call caddyauth.Argon2idHash.Hash because that type's parameters
// are unexported and its zero value has 0 iterations, which argon2 refuses.
func argon2idHash(plaintext []byte) ([]byte, error) {
	const (
		iterations = 1
		memoryKiB  = 46 * 1024
		threads    = 1
		keyLen     = 32
		saltLen    = 16
	)
	salt := randomBytes(saltLen)
	key := argon2.IDKey(plaintext, salt, iterations, memoryKiB, threads, keyLen)
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, iterations, threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}

func cmdOAuthToken(fl caddycmd.Flags, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	endpoint, err := tokenEndpoint(fl.String("url"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	id := fl.String("id")
	if id == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--id: the client id is required")
	}
	secret, err := clientSecret(fl, stdin, stderr)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	form := url.Values{"grant_type": {clients.GrantClientCredentials}}
	if scopes := strings.FieldsFunc(fl.String("scope"), func(r rune) bool { return r == ',' || unicode.IsSpace(r) }); len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	resources, err := fl.GetStringArray("resource")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	for _, r := range resources {
		form.Add("resource", r)
	}

	if endpoint.Scheme == "http" && !localissuer.IsLoopbackHost(endpoint.Hostname()) {
		fmt.Fprintf(stderr, "warning: sending the client secret unencrypted to %s\n", endpoint.Redacted())
	}
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	hc := &http.Client{
		// A redirected POST would be resent (307, 308) or turned into a GET
		// (others): neither is what the user asked for.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 1, fmt.Errorf("requesting a token from %s: %v", endpoint.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 1, fmt.Errorf("reading the answer of %s: %v", endpoint.Redacted(), err)
	}
	if !strings.HasSuffix(string(body), "\n") && len(body) > 0 {
		body = append(body, '\n')
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return 1, fmt.Errorf("%s answered %s, redirecting to %q: give the final token endpoint as --url", endpoint.Redacted(), resp.Status, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		_, _ = stderr.Write(body)
		return 1, fmt.Errorf("%s answered %s", endpoint.Redacted(), resp.Status)
	case !json.Valid(body):
		_, _ = stderr.Write(body)
		return 1, fmt.Errorf("%s answered 200 OK but not with JSON", endpoint.Redacted())
	}
	if _, err := stdout.Write(body); err != nil {
		return 1, err
	}
	return caddy.ExitCodeSuccess, nil
}

// tokenEndpoint takes an issuer URL (the endpoint is below its path) or a
// token endpoint URL.
func tokenEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--url: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("--url: %q: want an http or https URL", raw)
	case u.Host == "":
		return nil, fmt.Errorf("--url: %q: no host", raw)
	case u.User != nil:
		return nil, errors.New("--url: credentials in the URL; use --id and --secret")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("--url: %q: no query or fragment, please", raw)
	}
	if !strings.HasSuffix(u.Path, tokenPath) {
		u = u.JoinPath(strings.Split(strings.TrimPrefix(tokenPath, "/"), "/")...)
	}
	return u, nil
}

// clientSecret takes the secret from --secret, from the environment variable
// --secret-env names, or else from stdin: a prompt without echo on a
// terminal, the first line otherwise.
func clientSecret(fl caddycmd.Flags, stdin io.Reader, stderr io.Writer) (string, error) {
	secret, env := fl.String("secret"), fl.String("secret-env")
	switch {
	case fl.Changed("secret") && fl.Changed("secret-env"):
		return "", errors.New("--secret and --secret-env are mutually exclusive")
	case fl.Changed("secret"):
		if secret == "" {
			return "", errors.New("--secret: empty secret")
		}
		return secret, nil
	case fl.Changed("secret-env"):
		if secret = os.Getenv(env); secret == "" {
			return "", fmt.Errorf("--secret-env: environment variable %q is unset or empty", env)
		}
		return secret, nil
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Client secret: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading the secret: %v", err)
		}
		secret = string(b)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the secret from stdin: %v", err)
		}
		secret = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	}
	if secret == "" {
		return "", errors.New("no client secret: give --secret, --secret-env or a line on stdin")
	}
	return secret, nil
}
