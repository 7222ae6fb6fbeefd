// Package core holds edgeswarm's value types: content hashes, chunk
// arithmetic, bitfields and the signed manifest that ties an object version to
// its chunk hashes. It depends on nothing but the standard library; every
// other package imports toward it.
package core
