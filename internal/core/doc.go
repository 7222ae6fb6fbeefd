// Package core holds edgeswarm's value types: content hashes, chunk
// arithmetic, bitfields, the signed manifest that ties an object version to
// its chunk hashes, and peer identities with the signed tickets that vouch
// for them. It depends on nothing but the standard library; every
// other package imports toward it.
package core
