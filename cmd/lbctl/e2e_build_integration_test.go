//go:build integration && !vm

package main

// e2ePrebuilt: on the host the end-to-end tests build lbd and lbctl from
// this tree.
const e2ePrebuilt = false
