package validator

// Tamper is tamper for the external tests.
var Tamper = tamper
