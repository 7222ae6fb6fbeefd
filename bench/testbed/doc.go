// Package testbed is the netns testbed (run.sh, lib.sh, systems/*.sh, see
// README.md); its Go test is the CI smoke run of the flash-crowd scenario.
package testbed
