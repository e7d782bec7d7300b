"""Repository lineage API: repo.graph, add_edge / remove_edge, rename, tags, references."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modelgit as mg
from modelgit.lineage.graph import Edge, LineageGraph


def sd(seed: int, n: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "layers.0.weight": torch.randn(n, n, generator=g),
        "layers.0.bias": torch.randn(n, generator=g),
    }


@pytest.fixture
def repo(tmp_path: Path) -> mg.Repository:
    r = mg.init(tmp_path / "repo")
    yield r
    r.close()


@pytest.fixture
def family(repo: mg.Repository) -> mg.Repository:
    repo.add("base", sd(0))
    repo.add("ft-a", sd(1), parents="base")
    repo.add("ft-b", sd(2), parents="base", relation="distill")
    repo.add("merged", sd(3), parents=["ft-a", "ft-b"], relation="merge")
    repo.commit("base", sd(4), message="v2")
    return repo


def test_graph_is_a_lineage_graph(family: mg.Repository) -> None:
    g = family.graph
    assert isinstance(g, LineageGraph)
    assert g.models == ["base", "ft-a", "ft-b", "merged"]
    assert g.parents("merged") == ["ft-a", "ft-b"]
    assert g.children("base") == ["ft-a", "ft-b"]
    assert g.ancestors("merged") == ["ft-a", "ft-b", "base"]
    assert g.descendants("base") == ["ft-a", "ft-b", "merged"]
    assert g.roots() == ["base"]
    assert g.topological_order()[0] == "base" and g.topological_order()[-1] == "merged"
    assert g.edge("base", "ft-b") == Edge("base", "ft-b", "distill")
    assert {e.relation for e in g.edges()} == {"finetune", "distill", "merge"}
    assert g.path("ft-a", "ft-b") == ["ft-a", "base", "ft-b"]
    assert g.node("base").latest == 2


def test_graph_version_edges(family: mg.Repository) -> None:
    g = family.graph
    assert [(e.parent, e.child) for e in g.edges(kind="version")] == [("base@1", "base@2")]
    prov = {(e.parent, e.child, e.relation) for e in g.edges(kind=None) if e.kind == "provenance"}
    assert ("base@1", "ft-a@1", "finetune") in prov
    assert ("ft-b@1", "merged@1", "merge") in prov


def test_graph_is_a_snapshot(family: mg.Repository) -> None:
    g = family.graph
    family.add("late", sd(9), parents="merged")
    assert "late" not in g
    assert family.graph.parents("late") == ["merged"]


def test_user_relation_strings(repo: mg.Repository) -> None:
    repo.add("a", sd(0))
    repo.add("b", sd(1), parents="a", relation="federated-round-3")
    assert repo.graph.edge("a", "b").relation == "federated-round-3"


def test_add_edge_after_the_fact(family: mg.Repository) -> None:
    family.add("student", sd(5))
    e = family.add_edge("base@1", "student", "distill")
    assert e == Edge("base", "student", "distill")
    g = family.graph
    assert g.parents("student") == ["base"]
    assert "student" in g.descendants("base")
    # recorded at version level too: base@1 -> student@1
    assert Edge("base@1", "student@1", "distill") in g.edges(kind=None)
    v = family.version("student@1")
    assert [(p.ref, p.kind, p.relation) for p in v.parents] == [("base@1", "provenance", "distill")]
    # same edge again: nothing to do; another relation: error
    assert family.add_edge("base", "student", "distill") == e
    with pytest.raises(mg.LineageError, match="already recorded"):
        family.add_edge("base", "student", "finetune")


def test_add_edge_refuses_cycles(family: mg.Repository) -> None:
    with pytest.raises(mg.LineageError, match="cycle.*merged -> base"):
        family.add_edge("merged", "base")
    with pytest.raises(mg.LineageError, match="cycle"):
        family.add_edge("ft-a", "base")
    with pytest.raises(mg.LineageError, match="own parent"):
        family.add_edge("base", "base@2")
    assert family.graph.parents("base") == []  # nothing was written


def test_add_edge_errors(family: mg.Repository) -> None:
    with pytest.raises(mg.UnknownModel):
        family.add_edge("nope", "base")
    with pytest.raises(mg.UnknownModel):
        family.add_edge("base", "nope")
    with pytest.raises(mg.UnknownVersion):
        family.add_edge("base@7", "merged")
    with pytest.raises(mg.LineageError, match="relation"):
        family.add_edge("ft-a", "ft-b", "")
    with pytest.raises(mg.LineageError, match="relation"):
        family.add_edge("ft-a", "ft-b", "x" * 65)


def test_remove_edge(family: mg.Repository) -> None:
    removed = family.remove_edge("ft-b", "merged")
    assert removed == Edge("ft-b", "merged", "merge")
    g = family.graph
    assert g.parents("merged") == ["ft-a"]
    assert [p.model for p in family.version("merged").parents] == ["ft-a"]
    assert torch.equal(family.load("merged")["layers.0.bias"], sd(3)["layers.0.bias"])
    with pytest.raises(mg.LineageError, match="no edge"):
        family.remove_edge("ft-b", "merged")
    # once removed, the reverse edge is allowed
    family.add_edge("merged", "ft-b", "distill")
    assert family.graph.parents("ft-b") == ["base", "merged"]


def test_rename(family: mg.Repository) -> None:
    family.tag("base@1", "first")
    family.rename("base", "foundation")
    assert "base" not in family and "foundation" in family
    assert family.models()[0] == "foundation"
    assert [v.number for v in family.versions("foundation")] == [1, 2]
    g = family.graph
    assert g.children("foundation") == ["ft-a", "ft-b"]
    assert g.edge("foundation", "ft-b").relation == "distill"
    assert family.version("ft-a").parents[0].ref == "foundation@1"
    assert family.tags()["first"].ref == "foundation@1"
    assert torch.equal(family.load("foundation@2")["layers.0.weight"], sd(4)["layers.0.weight"])
    assert family.fsck().ok


def test_rename_errors(family: mg.Repository) -> None:
    with pytest.raises(mg.ModelExists):
        family.rename("ft-a", "ft-b")
    with pytest.raises(mg.UnknownModel):
        family.rename("nope", "x")
    with pytest.raises(mg.InvalidName):
        family.rename("ft-a", "a/b")
    family.tag("ft-a", "prod")
    with pytest.raises(mg.ModelExists, match="tag"):
        family.rename("ft-b", "prod")
    family.rename("ft-a", "ft-a")  # no-op


def test_references(family: mg.Repository) -> None:
    assert family.version("base").number == 2
    assert family.version("base@latest").number == 2
    assert family.version("base@1").number == 1
    assert torch.equal(family.load("base@1")["layers.0.bias"], sd(0)["layers.0.bias"])
    with pytest.raises(mg.UnknownVersion):
        family.version("base@3")
    with pytest.raises(mg.InvalidName):
        family.version("base@x")


def test_tags(family: mg.Repository) -> None:
    v = family.tag("base@1", "v1.0")
    assert v.ref == "base@1"
    assert family.version("v1.0").ref == "base@1"
    assert torch.equal(family.load("v1.0")["layers.0.weight"], sd(0)["layers.0.weight"])
    family.commit("base", sd(6))
    assert family.version("v1.0").ref == "base@1"  # a tag does not move with commits
    family.tag("ft-a", "prod")
    assert {t: v.ref for t, v in family.tags().items()} == {"prod": "ft-a@1", "v1.0": "base@1"}
    assert list(family.tags("base")) == ["v1.0"]
    assert list(family.tags("base@2")) == []
    assert list(family.tags("ft-a@1")) == ["prod"]
    assert list(family.tags("prod")) == ["prod"]  # a tag names its version
    with pytest.raises(mg.ModelExists):
        family.tag("ft-b", "prod")
    family.tag("ft-b", "prod", force=True)
    assert family.version("prod").ref == "ft-b@1"
    family.tag("ft-b", "prod")  # same target again: fine
    family.untag("prod")
    with pytest.raises(mg.UnknownModel):
        family.version("prod")
    with pytest.raises(mg.UnknownVersion):
        family.untag("prod")


def test_tag_errors(family: mg.Repository) -> None:
    with pytest.raises(mg.InvalidName, match="model name"):
        family.tag("base", "ft-a")
    with pytest.raises(mg.InvalidName):
        family.tag("base", "bad/tag")
    with pytest.raises(mg.UnknownModel):
        family.tag("nope", "t")


def test_remove_updates_graph(family: mg.Repository) -> None:
    family.tag("ft-b", "keep")
    with pytest.raises(mg.LineageError, match="'ft-b' has descendants: merged"):
        family.remove("ft-b")
    assert "ft-b" in family and family.fsck().ok
    family.remove("ft-b", force=True)
    g = family.graph
    assert "ft-b" not in g
    # merged keeps its ancestry: its edge from ft-b now comes from ft-b's parent
    assert g.parents("merged") == ["ft-a", "base"]
    assert g.edge("base", "merged") == Edge("base", "merged", "merge", via="ft-b")
    assert g.edge("base", "merged").label == "merge via removed ft-b"
    assert [(p.ref, p.relation) for p in family.version("merged").parents] == [
        ("ft-a@1", "merge"),
        ("base@1", "merge"),
    ]
    assert "keep" not in family.tags()
    assert torch.equal(family.load("merged")["layers.0.bias"], sd(3)["layers.0.bias"])
    assert family.fsck().ok


def test_forced_remove_relinks_to_grandparents_across_versions(repo: mg.Repository) -> None:
    repo.add("root", sd(0))
    repo.commit("root", sd(1))
    repo.add("mid", sd(2), parents="root@1", relation="distill")
    repo.commit("mid", sd(3))
    repo.add("leaf", sd(4), parents="mid@2", relation="prune")
    repo.add("twig", sd(5), parents="mid")
    assert repo.fsck().ok
    with pytest.raises(mg.LineageError, match="descendants: leaf, twig.*force=True"):
        repo.remove("mid")
    repo.remove("mid", force=True)
    assert repo.fsck().ok
    g = repo.graph
    assert g.edge("root", "leaf") == Edge("root", "leaf", "prune", via="mid")
    assert g.edge("root", "twig") == Edge("root", "twig", "finetune", via="mid")
    # leaf@1 came from mid@2, whose nearest provenance parent is root@1 (via mid@1)
    assert [(p.ref, p.kind, p.relation) for p in repo.version("leaf").parents] == [
        ("root@1", "provenance", "prune")
    ]
    assert repo.removed_ancestors("leaf") == [
        {"model": "mid", "relation": "prune", "linked_to": ["root"], "versions": [1]}
    ]
    assert "prune via removed mid" in g.to_text()
    assert "prune via removed mid" in g.to_dot()
    # a root with descendants: they keep a tombstone
    repo.remove("root", force=True)
    assert repo.fsck().ok
    g = repo.graph
    assert g.roots() == ["leaf", "twig"] and g.node("leaf").removed_parents == (("root", "prune"),)
    assert "from removed root [prune]" in g.to_text()
    assert g.node("leaf").to_json()["removed_parents"] == [{"model": "root", "relation": "prune"}]
    assert [n["model"] for n in repo.removed_ancestors("leaf")] == ["mid", "root"]
    repo.rename("leaf", "leaf2")  # the notes follow the model
    assert [n["model"] for n in repo.removed_ancestors("leaf2")] == ["mid", "root"]
    assert torch.equal(repo.load("leaf2")["layers.0.bias"], sd(4)["layers.0.bias"])
    assert repo.fsck().ok


def test_graph_drawings_from_repository(family: mg.Repository) -> None:
    g = family.graph
    text = g.to_text()
    assert "stored" in text and "merged [merge]" in text
    svg = g.to_svg()
    assert "stored" in svg and "<svg" in svg
    assert "base@2" in g.to_dot(versions=True)
    assert "<svg" in g.to_html()
