package cachepolicy

// sketch is a count-min sketch of recent key frequencies with 4 rows of
// saturating 4-bit counters (kept in bytes), halved every 10 × width
// additions so that old popularity fades (TinyLFU's reset).
type sketch struct {
	rows    [4][]uint8
	shift   uint // 64 − log2(width): an index is the top bits of a hash
	adds    int
	samples int
}

const sketchMax = 15

// init (re)sizes the sketch for about n keys, forgetting all counts.
func (s *sketch) init(n int) {
	w, bits := 16, uint(4)
	for w < n {
		w <<= 1
		bits++
	}
	for i := range s.rows {
		s.rows[i] = make([]uint8, w)
	}
	s.shift = 64 - bits
	s.adds = 0
	s.samples = 10 * w
}

func (s *sketch) width() int { return len(s.rows[0]) }

// hash is 64-bit FNV-1a: deterministic, so policy runs are reproducible.
func hash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h
}

// index derives row i's slot by double hashing (Kirsch–Mitzenmacher),
// then Fibonacci hashing to the row's width.
func (s *sketch) index(h uint64, i int) uint64 {
	g := h + uint64(i)*((h>>32)|1)
	return (g * 0x9E3779B97F4A7C15) >> s.shift
}

func (s *sketch) add(key string) {
	h := hash(key)
	for i := range s.rows {
		if c := &s.rows[i][s.index(h, i)]; *c < sketchMax {
			*c++
		}
	}
	if s.adds++; s.adds >= s.samples {
		s.age()
	}
}

func (s *sketch) estimate(key string) uint8 {
	h := hash(key)
	m := uint8(sketchMax)
	for i := range s.rows {
		m = min(m, s.rows[i][s.index(h, i)])
	}
	return m
}

// age halves every counter.
func (s *sketch) age() {
	for i := range s.rows {
		for j, c := range s.rows[i] {
			s.rows[i][j] = c >> 1
		}
	}
	s.adds /= 2
}
