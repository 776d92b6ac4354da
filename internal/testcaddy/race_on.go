//go:build race

package testcaddy

const raceEnabled = true
