// Package testutil holds scaffolding shared by the tests of several lbd
// packages. It is for _test.go files only: non-test code must not import it
// or its subpackages.
package testutil
