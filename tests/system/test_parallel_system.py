"""System states cross process boundaries: the parallel checker ships them to its workers.

Programs and ops tables hold closures, so they pickle by name (kernel.state.PickledByName);
this pins that a system state survives pickling and that parallel and sequential agree.
"""

from __future__ import annotations

import pickle

from dmabuf_model.check import check
from dmabuf_model.drivers.compose import DmaBufSystem
from dmabuf_model.drivers.rdma_umem import RdmaOdpImporter
from dmabuf_model.drivers.vfio_pci import VfioPciExporter
from dmabuf_model.platform.topology import Topology
from dmabuf_model.system.examples import pin_invalidate_race


def test_a_system_state_with_programs_and_ops_survives_pickling() -> None:
    system = DmaBufSystem(Topology.simple(["vfio0", "nic0"]))
    vfio = system.add_exporter(VfioPciExporter, device="vfio0")
    system.add_importer(RdmaOdpImporter, device="nic0", source=vfio)
    model = system.model()
    state = model.init_states()[0]
    _, after = next(iter(model.successors(state)))  # a state with a spawned thread
    for s in (state, after):
        assert pickle.loads(pickle.dumps(s)) == s


def test_parallel_check_of_a_system_model_finds_the_same_states_and_verdict() -> None:
    """check(workers=2) on the split race (system/examples.py): same counts, same trace."""
    model = pin_invalidate_race("split")
    seq = check(model, stop_at_first=False)
    par = check(model, workers=2, stop_at_first=False)
    assert par.stats.unique == seq.stats.unique
    assert sorted(par.discoveries) == sorted(seq.discoveries)
    for name, d in seq.discoveries.items():
        assert par.discoveries[name].path.token == d.path.token
