"""Which module and tensor of one tree is which of the other: the alignment of a
structural diff (``structure.py`` reports it).

Content first, names second, position last:

1. **Identical layers anywhere.** Subtrees of at least ``MIN_MOVE_NUMEL`` elements
   whose ``exact`` digest (relative names, dtypes, shapes, contents) occurs once on each
   side are partners, with all they contain, largest first. A layer moved or renamed
   as a whole, and numbered blocks shifted by an insertion, are found here.
2. **Top-down, inside partners** (breadth first from the two models): tensors by leaf
   name, then by content; sub-modules by where their already paired tensors went (a
   majority of the elements), by name, by a unique ``exact`` then ``bag`` digest
   among the unpaired siblings; numbered siblings (``layer.0``, ``layer.1``, ...) by a
   sequence alignment between the pairs already known: a longest common subsequence of
   contents (``bag``), then of structure (``shape``: a fine-tune, a cast), then by
   position where both gaps are as long.
3. **What is left, anywhere**: modules of a unique ``bag`` digest (insides renamed),
   then step 2 again inside them; then tensors of a unique content.

Small tensors (LayerNorm weights, biases) are paired across modules only through
their modules, so that two constant vectors never make a move of their own. A pair of
numbered siblings is a *shift*, not a rename, when it keeps the order of the other
pairs of that list (a longest increasing subsequence decides).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence

from .structure_tree import Node, TNode, numbered

__all__ = ["MIN_MOVE_NUMEL", "Alignment", "align"]

MIN_MOVE_NUMEL = 1024  # elements a layer needs to be paired outside its parent's pair
_MAX_DP = 4_000_000  # cells of a sequence alignment; beyond, difflib's matcher


class Alignment:
    """Partners between a left and a right tree (modules and tensors)."""

    def __init__(self, left: Node, right: Node) -> None:
        self.left = left
        self.right = right
        self.l2r: dict[Node, Node] = {}
        self.r2l: dict[Node, Node] = {}
        self.tl2r: dict[TNode, TNode] = {}
        self.tr2l: dict[TNode, TNode] = {}
        self.shifted: set[Node] = set()  # left numbered modules paired in order

    def pair(self, a: Node, b: Node) -> None:
        self.l2r[a] = b
        self.r2l[b] = a

    def pair_tensor(self, a: TNode, b: TNode) -> None:
        self.tl2r[a] = b
        self.tr2l[b] = a

    def pair_same(self, a: Node, b: Node) -> None:
        """Pair two subtrees of equal ``exact`` digest, and all they hold by name."""
        stack = [(a, b)]
        while stack:
            x, y = stack.pop()
            self.pair(x, y)
            for k, t in x.tensors.items():
                self.pair_tensor(t, y.tensors[k])
            for k, c in x.children.items():
                d = y.children.get(k)
                if d is not None and d not in self.r2l and c not in self.l2r:
                    stack.append((c, d))

    def renamed(self, a: Node) -> bool:
        """Whether left module ``a`` sits under another path than its partner: moved to
        another parent, or another name (a number kept in order is a shift, not a rename)."""
        b = self.l2r[a]
        if a.parent is None or b.parent is None:
            return a.parent is not b.parent
        if self.l2r.get(a.parent) is not b.parent:
            return True
        return a.name != b.name and a not in self.shifted

    def renamed_tensor(self, t: TNode) -> bool:
        u = self.tl2r[t]
        return t.name != u.name or self.l2r.get(t.parent) is not u.parent


def align(left: Node, right: Node) -> Alignment:
    """The alignment of two trees (see the module's docstring)."""
    m = Alignment(left, right)
    if left.exact == right.exact and left.count:
        m.pair_same(left, right)
    else:
        m.pair(left, right)
        _unique_pairs(m, left, right, lambda n: n.exact, same=True)
    queue: deque[tuple[Node, Node]] = deque([(left, right)])
    _top_down(m, queue)
    # modules whose insides were renamed, then what remains of them
    found = _unique_pairs(m, left, right, lambda n: n.bag, same=False)
    queue.extend(found)
    _top_down(m, queue)
    _unique_tensors(m)
    _mark_shifts(m)
    return m


# -- step 1 and 3: unique digests anywhere -----------------------------------------------


def _unique_pairs(
    m: Alignment, left: Node, right: Node, key: Callable[[Node], Hashable], *, same: bool
) -> list[tuple[Node, Node]]:
    """Pair unpaired modules (of MIN_MOVE_NUMEL elements or more) whose digest is unique
    on both sides, largest first; identical paths settle a digest met more than once."""
    groups: dict[Hashable, tuple[list[Node], list[Node]]] = {}
    for side, root, paired in ((0, left, m.l2r), (1, right, m.r2l)):
        for n in root.walk():
            if n.parent is not None and n.numel >= MIN_MOVE_NUMEL and n not in paired:
                groups.setdefault(key(n), ([], []))[side].append(n)
    found = []
    order = sorted(groups.values(), key=lambda g: (-g[0][0].numel if g[0] else 0, _depth(g)))
    for ls, rs in order:
        ls = [n for n in ls if n not in m.l2r and not _inside_pair(n, m.l2r, same)]
        rs = [n for n in rs if n not in m.r2l and not _inside_pair(n, m.r2l, same)]
        if not ls or not rs:
            continue
        for a, b in _settle(ls, rs):
            if same:
                m.pair_same(a, b)
            else:
                m.pair(a, b)
            found.append((a, b))
    return found


def _depth(group: tuple[list[Node], list[Node]]) -> int:
    return min((n.depth for n in group[0] + group[1]), default=0)


def _inside_pair(n: Node, paired: dict[Node, Node], same: bool) -> bool:
    """In step 1 a node under a paired one was paired with it (or on purpose not)."""
    return same and any(a in paired for a in n.ancestors() if a.parent is not None)


def _settle(ls: list[Node], rs: list[Node]) -> list[tuple[Node, Node]]:
    if len(ls) == 1 and len(rs) == 1:
        return [(ls[0], rs[0])]
    by_path = {n.path: n for n in rs}
    out = [(a, by_path[a.path]) for a in ls if a.path in by_path]
    taken_l = {a for a, _ in out}
    taken_r = {b for _, b in out}
    rest_l = [a for a in ls if a not in taken_l]
    rest_r = [b for b in rs if b not in taken_r]
    if len(rest_l) == 1 and len(rest_r) == 1:
        out.append((rest_l[0], rest_r[0]))
    return out


def _unique_tensors(m: Alignment) -> None:
    groups: dict[tuple, tuple[list[TNode], list[TNode]]] = {}
    for side, root, paired in ((0, m.left, m.tl2r), (1, m.right, m.tr2l)):
        for t in root.walk_tensors():
            if t not in paired and t.numel >= MIN_MOVE_NUMEL:
                groups.setdefault(t.key(), ([], []))[side].append(t)
    for ls, rs in groups.values():
        if len(ls) == 1 and len(rs) == 1:
            m.pair_tensor(ls[0], rs[0])


# -- step 2: inside partners -------------------------------------------------------------


def _top_down(m: Alignment, queue: deque[tuple[Node, Node]]) -> None:
    while queue:
        a, b = queue.popleft()
        _align_tensors(m, a, b)
        _align_children(m, a, b)
        for c in a.children.values():
            d = m.l2r.get(c)
            if d is not None and d.parent is b:
                queue.append((c, d))


def _align_tensors(m: Alignment, a: Node, b: Node) -> None:
    ls = [t for t in a.tensors.values() if t not in m.tl2r]
    for t in ls:
        u = b.tensors.get(t.name)
        if u is not None and u not in m.tr2l:
            m.pair_tensor(t, u)
    ls = [t for t in ls if t not in m.tl2r]
    rs = [u for u in b.tensors.values() if u not in m.tr2l]
    if ls and rs:
        for t, u in _unique_keys(ls, rs, TNode.key):
            m.pair_tensor(t, u)


def _unique_keys(
    ls: Sequence, rs: Sequence, key: Callable[[object], Hashable]
) -> list[tuple[object, object]]:
    kl: dict[Hashable, list] = {}
    kr: dict[Hashable, list] = {}
    for x in ls:
        kl.setdefault(key(x), []).append(x)
    for y in rs:
        kr.setdefault(key(y), []).append(y)
    return [(xs[0], kr[k][0]) for k, xs in kl.items() if len(xs) == 1 and len(kr.get(k, ())) == 1]


def _align_children(m: Alignment, a: Node, b: Node) -> None:
    def free_l() -> list[Node]:
        return [c for c in a.children.values() if c not in m.l2r]

    def free_r() -> list[Node]:
        return [d for d in b.children.values() if d not in m.r2l]

    if not free_l() or not free_r():
        return
    _by_votes(m, free_l(), b)
    right = {d.name: d for d in free_r()}
    for c in free_l():
        d = right.get(c.name)
        if d is not None and not numbered(c.name):
            m.pair(c, d)
    for key in (lambda n: n.exact, lambda n: n.bag):
        ls = [c for c in free_l() if c.count]
        rs = [d for d in free_r() if d.count]
        for c, d in _unique_keys(ls, rs, key):
            m.pair(c, d)  # type: ignore[arg-type]
    _align_numbered(m, a, b)


def _by_votes(m: Alignment, free: list[Node], b: Node) -> None:
    """Pair a sub-module with the sub-module of ``b`` that holds the partners of most of
    its (already paired) elements, if that is also most of the other's elements."""
    for c in free:
        votes: dict[Node, int] = {}
        for t in c.walk_tensors():
            u = m.tl2r.get(t)
            if u is None:
                continue
            d = _child_of(u.parent, b)
            if d is not None:
                votes[d] = votes.get(d, 0) + t.numel
        if not votes:
            continue
        d = max(votes, key=votes.__getitem__)
        if d not in m.r2l and 2 * votes[d] > c.numel and 2 * votes[d] > d.numel:
            m.pair(c, d)


def _child_of(n: Node | None, b: Node) -> Node | None:
    while n is not None and n.parent is not b:
        n = n.parent
    return n


def _align_numbered(m: Alignment, a: Node, b: Node) -> None:
    ls = [c for c in a.children.values() if numbered(c.name)]
    rs = [d for d in b.children.values() if numbered(d.name)]
    if not ls or not rs:
        return
    where = {d: j for j, d in enumerate(rs)}
    anchors = [(i, where[m.l2r[c]]) for i, c in enumerate(ls) if m.l2r.get(c) in where]
    kept = _increasing(anchors)
    bounds = [(-1, -1), *kept, (len(ls), len(rs))]
    for (i0, j0), (i1, j1) in zip(bounds, bounds[1:], strict=False):
        gl = [c for c in ls[i0 + 1 : i1] if c not in m.l2r]
        gr = [d for d in rs[j0 + 1 : j1] if d not in m.r2l]
        for c, d in _align_gap(gl, gr, (_bag_key, _shape_key, None)):
            m.pair(c, d)


def _bag_key(n: Node) -> Hashable:
    return ("bag", n.bag) if n.count else ("type", n.type)


def _shape_key(n: Node) -> Hashable:
    return ("shape", n.shape) if n.count else ("type", n.type)


def _align_gap(
    ls: list[Node], rs: list[Node], levels: tuple[Callable[[Node], Hashable] | None, ...]
) -> Iterable[tuple[Node, Node]]:
    """Pairs in one gap between anchors: a common subsequence by the first key, the
    gaps it leaves by the next ones, and finally by position when the lengths agree."""
    if not ls or not rs:
        return
    key, rest = levels[0], levels[1:]
    if key is None:
        if len(ls) == len(rs):
            yield from zip(ls, rs, strict=True)
        return
    pairs = _common(ls, rs, key)
    bounds = [(-1, -1), *pairs, (len(ls), len(rs))]
    for (i0, j0), (i1, j1) in zip(bounds, bounds[1:], strict=False):
        yield from _align_gap(ls[i0 + 1 : i1], rs[j0 + 1 : j1], rest)
        if i1 < len(ls):
            yield ls[i1], rs[j1]


def _common(
    ls: list[Node], rs: list[Node], key: Callable[[Node], Hashable]
) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of keys; among the longest, the one
    with most pairs of equal numbers (a block that did not move)."""
    ka = [key(n) for n in ls]
    kb = [key(n) for n in rs]
    n, k = len(ka), len(kb)
    if n * k > _MAX_DP:
        sm = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
        return [(blk.a + t, blk.b + t) for blk in sm.get_matching_blocks() for t in range(blk.size)]
    big = n + k + 1
    # score[i][j]: best of ka[i:], kb[j:]
    score = [[0] * (k + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = score[i], score[i + 1]
        for j in range(k - 1, -1, -1):
            best = max(below[j], row[j + 1])
            if ka[i] == kb[j]:
                same = 1 if ls[i].name == rs[j].name else 0
                best = max(best, below[j + 1] + big + same)
            row[j] = best
    out = []
    i = j = 0
    while i < n and j < k:
        if ka[i] == kb[j]:
            same = 1 if ls[i].name == rs[j].name else 0
            if score[i][j] == score[i + 1][j + 1] + big + same:
                out.append((i, j))
                i, j = i + 1, j + 1
                continue
        if score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    return out


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A longest subsequence of ``pairs`` (sorted by the first index) increasing in the
    second; among the longest, the one with most equal indexes."""
    n = len(pairs)
    if n > 2000:  # patience sorting, no tie-break
        import bisect

        tails: list[int] = []
        back: list[int] = [-1] * n
        idx: list[int] = []
        for p, (_, j) in enumerate(pairs):
            q = bisect.bisect_left(tails, j)
            if q == len(tails):
                tails.append(j)
                idx.append(p)
            else:
                tails[q] = j
                idx[q] = p
            back[p] = idx[q - 1] if q else -1
        out, p = [], idx[-1] if idx else -1
        while p >= 0:
            out.append(pairs[p])
            p = back[p]
        return out[::-1]
    big = n + 1
    best = [big + (i == j) for i, j in pairs]
    back = [-1] * n
    for p in range(n):
        for q in range(p):
            if pairs[q][1] < pairs[p][1] and best[q] + big + (pairs[p][0] == pairs[p][1]) > best[p]:
                best[p] = best[q] + big + (pairs[p][0] == pairs[p][1])
                back[p] = q
    if not n:
        return []
    p = max(range(n), key=best.__getitem__)
    out = []
    while p >= 0:
        out.append(pairs[p])
        p = back[p]
    return out[::-1]


def _mark_shifts(m: Alignment) -> None:
    """Numbered modules paired in the order of their list are shifts, not renames."""
    for a, b in m.l2r.items():
        ls = [c for c in a.children.values() if numbered(c.name)]
        rs = {d: j for j, d in enumerate(b.children.values()) if numbered(d.name)}
        anchors = [(i, rs[m.l2r[c]]) for i, c in enumerate(ls) if m.l2r.get(c) in rs]
        for i, _ in _increasing(anchors):
            m.shifted.add(ls[i])
