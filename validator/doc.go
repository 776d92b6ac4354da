// Package validator is the bearer_auth middleware: it checks the OAuth 2.0
// bearer tokens of requests on guarded routes and refuses bad ones with
// RFC 6750 answers.
package validator
