"""A small probabilistic grammar of English-like sentences whose entropy is known exactly.

The grammar is a Markov chain over states; in each state the next action is drawn from a
fixed table: a word (which moves to a next state) or the end of the sentence. The first
word of a sentence is written as is, every later word with a leading space, the end as
". " (so sentences follow one another: "the cat sleeps. a red dog sees the bird. ").
Distinct actions of a state write distinct strings and the set of strings of a state is
prefix-free, so the character stream determines the actions: the stream is a deterministic,
uniquely decodable function of i.i.d. sentences.

Exact quantities, in nats:

- per sentence: entropy ``H_s`` (sum over visited states of the entropy of their action
  table) and expected length in characters ``L_s``, both from linear equations over states;
- entropy rate per character ``H_s / L_s``; the same number also comes out of the
  character-level chain (state, prefix of the current word), whose stationary distribution
  weights the entropy of each node's next-character table (a test checks the two agree);
- ``log_prob`` of a window of characters that starts at a sentence start, and the exact
  entropy of such windows of length T (a forward pass over the character-level chain).
"""

from __future__ import annotations

import numpy as np

END = "END"
# state -> list of (word or END, probability, next state)
GRAMMAR = {
    "start": [("the", 0.45, "noun"), ("a", 0.3, "noun"), ("every", 0.15, "noun"), ("my", 0.1, "noun")],
    "noun": [
        ("small", 0.08, "noun"), ("red", 0.07, "noun"), ("big", 0.05, "noun"),
        ("cat", 0.25, "verb"), ("dog", 0.2, "verb"), ("bird", 0.15, "verb"), ("robot", 0.2, "verb"),
    ],
    "verb": [
        ("sleeps", 0.2, "after"), ("runs", 0.2, "after"), ("sees", 0.3, "object"), ("likes", 0.2, "object"),
        ("chases", 0.1, "object"),
    ],
    "object": [("the", 0.6, "object_noun"), ("a", 0.4, "object_noun")],
    "object_noun": [
        ("red", 0.1, "object_noun"), ("ball", 0.3, "after"), ("cat", 0.2, "after"), ("tree", 0.25, "after"),
        ("robot", 0.15, "after"),
    ],
    "after": [(END, 0.55, None), ("today", 0.15, "end"), ("again", 0.1, "end"), ("and", 0.2, "start_and")],
    "end": [(END, 1.0, None)],
    "start_and": [("the", 0.6, "noun"), ("a", 0.4, "noun")],
}
START = "start"


def _token(state: str, word: str) -> str:
    if word == END:
        return ". "
    return word if state == START else " " + word


class Grammar:
    """The grammar above, with its character-level chain and exact entropies."""

    def __init__(self, grammar=GRAMMAR):
        self.grammar = grammar
        self.states = list(grammar)
        for s, actions in grammar.items():
            if not np.isclose(sum(p for _, p, _ in actions), 1.0):
                raise ValueError(f"probabilities of state {s!r} do not sum to 1")
            if len({w for w, _, _ in actions}) != len(actions):
                raise ValueError(f"state {s!r} lists a word twice")
        chars = sorted({c for s, acts in grammar.items() for w, _, _ in acts for c in _token(s, w)})
        self.vocab = tuple(chars)
        self._build_char_chain()

    # --- word level -------------------------------------------------------------------------
    def sentence_entropy_and_length(self) -> tuple[float, float]:
        """Exact entropy (nats) and expected number of characters of one sentence."""
        idx = {s: i for i, s in enumerate(self.states)}
        n = len(self.states)
        P = np.zeros((n, n))
        h, ell = np.zeros(n), np.zeros(n)
        for s, acts in self.grammar.items():
            for w, p, nxt in acts:
                h[idx[s]] -= p * np.log(p)
                ell[idx[s]] += p * len(_token(s, w))
                if nxt is not None:
                    P[idx[s], idx[nxt]] += p
        A = np.eye(n) - P  # expected totals until END: x = local + P x
        H, L = np.linalg.solve(A, h), np.linalg.solve(A, ell)
        return float(H[idx[START]]), float(L[idx[START]])

    def entropy_rate(self) -> float:
        """Nats per character: sentence entropy / expected characters per sentence."""
        H, L = self.sentence_entropy_and_length()
        return H / L

    # --- character level --------------------------------------------------------------------
    def _build_char_chain(self):
        """Nodes (state, prefix); for each node the next-character probabilities and next node."""
        nodes = {(s, ""): i for i, s in enumerate(self.states)}  # roots first: node i = state i
        todo = list(nodes)
        probs, nexts = {}, {}
        cid = {c: i for i, c in enumerate(self.vocab)}
        while todo:
            state, prefix = todo.pop()
            node = nodes[(state, prefix)]
            live = [(_token(state, w), p, nxt) for w, p, nxt in self.grammar[state]
                    if _token(state, w).startswith(prefix)]
            total = sum(p for _, p, _ in live)
            probs[node], nexts[node] = np.zeros(len(self.vocab)), np.full(len(self.vocab), -1)
            for tok, p, nxt in live:
                c = tok[len(prefix)]
                probs[node][cid[c]] += p / total
                if len(prefix) + 1 == len(tok):  # the word is complete: go to its next state's root
                    key = (START if nxt is None else nxt, "")
                else:
                    key = (state, prefix + c)
                if key not in nodes:
                    nodes[key] = len(nodes)
                    todo.append(key)
                if nexts[node][cid[c]] not in (-1, nodes[key]):
                    raise ValueError(f"grammar state {state!r}: no word may be a prefix of another")
                nexts[node][cid[c]] = nodes[key]
        m = len(nodes)
        self.node_probs = np.stack([probs[i] for i in range(m)])  # (nodes, chars)
        self.node_next = np.stack([nexts[i] for i in range(m)])  # (nodes, chars), -1: impossible
        self.start_node = self.states.index(START)
        safe = np.where(self.node_probs > 0, self.node_probs, 1.0)
        self.node_entropy = -(self.node_probs * np.log(safe)).sum(1)  # (nodes,)

    def _transition_matrix(self) -> np.ndarray:
        m = len(self.node_probs)
        Q = np.zeros((m, m))
        for i in range(m):
            for c in np.nonzero(self.node_probs[i])[0]:
                Q[i, self.node_next[i, c]] += self.node_probs[i, c]
        return Q

    def entropy_rate_from_char_chain(self) -> float:
        """The entropy rate again, from the stationary distribution of the character-level chain."""
        Q = self._transition_matrix()
        m = len(Q)
        A = np.vstack([Q.T - np.eye(m), np.ones((1, m))])
        pi = np.linalg.lstsq(A, np.append(np.zeros(m), 1.0), rcond=None)[0]
        return float(pi @ self.node_entropy)

    def window_entropy(self, T: int) -> float:
        """Exact entropy (nats) of the first T characters after a sentence start."""
        Q = self._transition_matrix()
        dist = np.zeros(len(Q))
        dist[self.start_node] = 1.0
        total = 0.0
        for _ in range(T):
            total += dist @ self.node_entropy
            dist = dist @ Q
        return float(total)

    def sample(self, n: int, T: int, rng: np.random.Generator) -> np.ndarray:
        """n windows of T character ids, each starting at a sentence start. (n, T) int64."""
        cdf = np.cumsum(self.node_probs, axis=1)
        cdf /= cdf[:, -1:]  # exactly 1 from the last possible character on: u < 1 never passes it
        node = np.full(n, self.start_node)
        out = np.empty((n, T), dtype=np.int64)
        for t in range(T):
            u = rng.random(n)[:, None]
            c = (u >= cdf[node]).sum(1)  # (n,) the first character whose cdf exceeds u
            out[:, t] = c
            node = self.node_next[node, c]
        return out

    def log_prob(self, ids) -> np.ndarray:
        """Exact log-probability (nats) of each window ``(N, T)`` that starts at a sentence start."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 2:
            raise ValueError(f"ids must have shape (N, T), got {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocab)):
            raise ValueError(f"ids must lie in 0..{len(self.vocab) - 1}")
        node = np.full(len(ids), self.start_node)
        total = np.zeros(len(ids))
        for t in range(ids.shape[1]):
            p = self.node_probs[node, ids[:, t]]
            with np.errstate(divide="ignore"):
                total += np.log(p)
            node = np.where(p > 0, self.node_next[node, ids[:, t]], node)
        return total
