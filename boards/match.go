package boards

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/mcinit/mcinit/identity"
)

// Errors Match wraps, for callers that tell the cases apart.
var (
	ErrNoMatch   = errors.New("no board matches")
	ErrAmbiguous = errors.New("boards match equally")
)

// Candidate is a board whose rule matched an identity, with how specific
// the best matching rule was.
type Candidate struct {
	Board *Board
	Rule  int // index into Board.Match
	Score int // larger is more specific; see Specificity
}

// Specificity of a rule that matched an identity (larger wins):
//
//   - device tree: the position of the matched string in the identity's
//     root compatible list, earlier being more specific (the list runs
//     from the exact board to the SoC family): MaxCompatible − index.
//   - DMI: first the number of fields the rule names (all of which
//     matched), then how many of them are exact strings rather than
//     globs: 16 × fields + exact.
//
// DT rules only apply to device-tree identities and DMI rules to DMI ones,
// so the two scales are never compared with each other.
func Specificity(r *Rule, id *identity.Identity) (score int, ok bool) {
	if len(r.Compatible) > 0 {
		if id.Source != identity.SourceDT {
			return 0, false
		}
		best := -1
		for _, want := range r.Compatible {
			for i, have := range id.Compatible {
				if have == want && (best < 0 || i < best) {
					best = i
				}
			}
		}
		if best < 0 {
			return 0, false
		}
		return identity.MaxCompatible - best, true
	}
	if id.Source != identity.SourceDMI {
		return 0, false
	}
	fields, exact := 0, 0
	for _, f := range r.dmiFields(id) {
		pat, val := f[1], f[2]
		if pat == "" {
			continue
		}
		if m, err := path.Match(pat, val); err != nil || !m {
			return 0, false
		}
		fields++
		if !strings.ContainsAny(pat, `*?[\`) {
			exact++
		}
	}
	return 16*fields + exact, true
}

// Candidates lists the boards of the identity's architecture that match
// it, most specific first (ties in name order). Generic boards are not
// candidates.
func (s *Set) Candidates(id identity.Identity) []Candidate {
	var cs []Candidate
	for _, b := range s.boards {
		if b.Generic || (id.Arch != "" && b.Arch != id.Arch) {
			continue
		}
		c := Candidate{Board: b, Rule: -1}
		for i := range b.Match {
			if sc, ok := Specificity(&b.Match[i], &id); ok && sc > c.Score {
				c.Rule, c.Score = i, sc
			}
		}
		if c.Rule >= 0 {
			cs = append(cs, c)
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Score > cs[j].Score })
	return cs
}

// Match picks the board for an identity: the most specific matching rule
// wins; two boards matching equally specifically is an error naming both.
// With no match, the architecture's generic board is returned when
// allowGeneric is set (the policy allows unknown boards), else an error.
func (s *Set) Match(id identity.Identity, allowGeneric bool) (*Board, error) {
	cs := s.Candidates(id)
	if len(cs) > 1 && cs[0].Score == cs[1].Score {
		names := []string{cs[0].Board.Name, cs[1].Board.Name}
		for _, c := range cs[2:] {
			if c.Score == cs[0].Score {
				names = append(names, c.Board.Name)
			}
		}
		return nil, fmt.Errorf("%w: %s (identity %s)", ErrAmbiguous, strings.Join(names, " and "), id.Class())
	}
	if len(cs) > 0 {
		return cs[0].Board, nil
	}
	if !allowGeneric {
		return nil, fmt.Errorf("%w identity %s (unknown boards are not allowed)", ErrNoMatch, id.Class())
	}
	arch := id.Arch
	if g, ok := s.Get(GenericName(arch)); ok && g.Generic {
		return g, nil
	}
	return nil, fmt.Errorf("%w identity %s, and there is no generic %s board", ErrNoMatch, id.Class(), arch)
}
