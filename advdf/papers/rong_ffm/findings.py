"""Seed 002's five findings, checked on our Tables 1-4."""

from __future__ import annotations

from advdf.papers.rong_ffm.measure import mean_or_none
from advdf.report.findings import Finding, both_scopes
from advdf.report.render import fmt


def ffm_findings(spec, datasets, t1, t2, clean3, uap3, urn3, t4, marks) -> list[Finding]:
    last = max(int(k) for k in spec.iap_iterations)

    def iap_cls(rows):
        accs = [t1[d, last]["acc"]["ours"] for d in rows]
        ious = [(t1[d, 0]["iou_fake"]["ours"], t1[d, last]["iou_fake"]["ours"]) for d in rows]
        known = [(b, a) for b, a in ious if None not in (b, a)]
        holds = None if None in accs or not known else max(accs) <= 0.1 and all(a < b for b, a in known)
        return Finding("iap_cls_fabricates", f"IAP-cls drops accuracy near 0 in {last} iterations and lowers IoU "
                       "without L_seg", f"accuracy {', '.join(fmt(a) for a in accs)}; IoU (fake) "
                       f"{', '.join(f'{fmt(b)} -> {fmt(a)}' for b, a in ious)}", holds, {"acc": accs})

    def iap_seg(rows):
        pairs = [(t2[d, "original"], t2[d, "attacked"]) for d in rows]
        vals = [(o["iou_adv"]["ours"], a["iou_adv"]["ours"], o["iou_orig"]["ours"], a["iou_orig"]["ours"])
                for o, a in pairs]
        known = [v for v in vals if None not in v]
        holds = None if not known else all(v[1] > v[0] and v[3] < v[2] for v in known)
        return Finding("iap_seg_fabricates", "IAP-seg raises IoU toward the adversarial masks and lowers it toward the "
                       "originals", "; ".join(f"adv {fmt(v[0])} -> {fmt(v[1])}, orig {fmt(v[2])} -> {fmt(v[3])}"
                                               for v in vals), holds)

    def uap_beats_urn(rows):
        pairs = [(uap3[a, d]["ours"], urn3[d]["ours"]) for a in datasets for d in rows]
        known = [p for p in pairs if None not in p]
        holds = None if not known else all(u < r for u, r in known)
        return Finding("uap_beats_urn", "UAP lowers accuracy more than URN in every cell",
                       f"{sum(u < r for u, r in known)}/{len(known)} cells", holds)

    def same_vs_unseen(rows):
        same = [clean3[d]["ours"] - uap3[d, d]["ours"] for d in rows if None not in (clean3[d]["ours"], uap3[d, d]["ours"])]
        unseen = [clean3[d]["ours"] - uap3[a, d]["ours"] for a in datasets for d in rows
                  if a != d and None not in (clean3[d]["ours"], uap3[a, d]["ours"])]
        s, u = mean_or_none(same), mean_or_none(unseen)
        return Finding("same_dataset_drop_larger", "the same-data-set drop exceeds the unseen-data-set drop",
                       f"mean drop same {fmt(s)}, unseen {fmt(u)}", None if None in (s, u) else s > u)

    def transfer(rows):
        models = list(spec.transfer)
        gains = {m: mean_or_none(t4[m, d]["urn"]["ours"] - t4[m, d]["uap"]["ours"] for d in rows
                          if None not in (t4[m, d]["urn"]["ours"], t4[m, d]["uap"]["ours"])) for m in models}
        holds = None if None in gains.values() else all(g > 0 for g in gains.values())
        return Finding("uap_transfers_to_unseen_ffms", "UAPs transfer to both unseen FFMs better than URN",
                       ", ".join(f"{m}: URN - UAP accuracy {fmt(g)}" for m, g in gains.items()), holds)

    found = []
    for check in (iap_cls, iap_seg, uap_beats_urn, same_vs_unseen, transfer):
        found += both_scopes(check, datasets, marks)
    return found

