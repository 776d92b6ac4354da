// Command caddy is Caddy with its standard modules and tokengate, as
// `xcaddy build --with github.com/tokengate/tokengate` would build it.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokengate/tokengate"
)

func main() {
	caddycmd.Main()
}
