"""Supervisors (graph-schema v4) through psim(): the reference's outcomes
that only the default order pins down, the round semantics, endings, and
failures.  tests/apps/sup_*_v4 check the rest in both orders."""
from pathlib import Path

import pytest

from appcases import APPS_DIR
from psim import BadInput, psim

TEMPLATE = """<?xml version="1.0"?>
<Graphs xmlns="https://poets-project.org/schemas/virtual-graph-schema-v4">
  <GraphType id="sup_{tag}">
    <MessageTypes><MessageType id="m"><Message><![CDATA[ uint32_t v; ]]></Message></MessageType></MessageTypes>
    <DeviceTypes>
      <DeviceType id="dev">
        <Properties><![CDATA[ uint32_t eager; uint32_t v; ]]></Properties>
        <State><![CDATA[ uint32_t init; uint32_t sent; uint32_t heard; ]]></State>
        <SupervisorOutPin messageTypeId="m">
          <OnSend><![CDATA[ message->v = deviceProperties->v; deviceState->sent += 1; ]]></OnSend>
        </SupervisorOutPin>
        <SupervisorInPin messageTypeId="m">
          <OnReceive><![CDATA[ deviceState->heard += 1; ]]></OnReceive>
        </SupervisorInPin>
        <ReadyToSend><![CDATA[
          if (!deviceState->sent && (deviceProperties->eager || deviceState->heard)) RTSSUP();
        ]]></ReadyToSend>
        <OnInit><![CDATA[ deviceState->init = 1; ]]></OnInit>
      </DeviceType>
      <SupervisorType id="boss">
        <Code><![CDATA[ #include <string> ]]></Code>
        <State><![CDATA[ uint32_t got; ]]></State>
        <OnInit><![CDATA[ {init} ]]></OnInit>
        <SupervisorInPin id="in" messageTypeId="m">
          <OnReceive><![CDATA[
            supervisorState->got += 1;
            {receive}
          ]]></OnReceive>
        </SupervisorInPin>
        <OnSupervisorIdle><![CDATA[ Super::post("tick"); ]]></OnSupervisorIdle>
      </SupervisorType>
    </DeviceTypes>
  </GraphType>
  <GraphInstance id="g" graphTypeId="sup_{tag}">
    <DeviceInstances>
      <DevI id="a" type="dev" P="{{1, 10}}"/>
      <DevI id="b" type="dev" P="{{1, 20}}"/>
      <DevI id="c" type="dev" P="{{0, 30}}"/>
    </DeviceInstances>
    <EdgeInstances/>
  </GraphInstance>
</Graphs>
"""


def app(tag: str, init: str = "", receive: str = "") -> str:
    """a and b send to the supervisor once from the start; c once it has heard from it."""
    return TEMPLATE.format(tag=tag, init=init, receive=receive)


def sup_log(result: dict) -> list[str]:
    return [text for who, _, text in result["log"] if who == "__supervisor__"]


def test_reference_idle_cadence_in_the_default_order():
    """Rounds match the reference's epochs: pulses 2, 2, 1, then three quiet ticks."""
    result = psim(str(APPS_DIR / "sup_idle_v4.xml"))
    assert sup_log(result) == ["sup_idle: seen=5 expect=6 idleCalls=7"]
    assert result["metrics"]["Exit code"] == 1


@pytest.mark.parametrize("order", ["fixed", "random"])
def test_reference_idle_success_variant(order):
    """The spec's variant with P="{5}": the success marker, exit 0."""
    xml = (APPS_DIR / "sup_idle_v4.xml").read_text().replace('P="{6}"', 'P="{5}"')
    result = psim(xml, options={"order": order, "seed": 4})
    assert result["status"] == "exit" and result["metrics"]["Exit code"] == 0
    assert "expect=5" in sup_log(result)[0]


def test_exit_request_lets_the_round_finish():
    """The supervisor stops at its first message, but b, ready when the round
    began, still sends in it; c, made ready by the broadcast, does not."""
    result = psim(app("round", receive="RTSBCAST(); stop_application();"))
    assert result["status"] == "exit" and result["metrics"]["Exit code"] == 0
    assert result["states"] == {"a": {"init": 1, "sent": 1, "heard": 2}, "b": {"init": 1, "sent": 1, "heard": 2},
                                "c": {"init": 1, "sent": 0, "heard": 2}}
    assert sup_log(result) == ["tick"]


def test_exit_in_supervisor_init_ends_after_all_inits():
    result = psim(app("init_exit", init="stop_application();"))
    assert result["status"] == "exit" and result["metrics"]["Exit code"] == 0
    assert all(s == {"init": 1, "sent": 0, "heard": 0} for s in result["states"].values()), result["states"]
    assert sup_log(result) == []          # no round ran, so no tick


def test_broadcast_reaches_late_senders_next_round():
    """Without a stop, c (made ready by the broadcast in round 0) sends in
    round 1; everyone hears all three broadcasts, then the run ends idle."""
    result = psim(app("bcast", receive="RTSBCAST();"))
    assert result["status"] == "idle"
    assert all(s == {"init": 1, "sent": 1, "heard": 3} for s in result["states"].values()), result["states"]
    assert result["metrics"]["Delivered messages"] == 9
    assert sup_log(result) == ["tick"] * 14    # rounds 0-1 active, 11 idle, and the end-of-run call


def test_supervisor_assert_names_supervisor_handler_and_line():
    result = psim(app("assert", receive="assert(message->v == 99);"))
    assert result["status"] == "failed"
    err = result["error"]
    assert "assertion 'message->v == 99' failed in supervisor 'boss', handler OnReceive of pin 'in'" in err, err
    line = TEMPLATE.splitlines().index("            {receive}") + 1
    assert err.endswith(f"<string>:{line}"), err


def test_init_may_return_and_output_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TMP", str(tmp_path))
    init = ('std::string d = Super::get_output_directory(); '
            'Super::post(d.rfind(std::string(getenv("TMP")) + "/supervisor_dir_", 0) == 0 ? "dir" : "no dir: " + d); '
            'return 5;')
    result = psim(app("outdir", init=init))
    assert sup_log(result)[0] == "dir"
    assert [p.name[:15] for p in Path(tmp_path).iterdir()] == ["supervisor_dir_"]


def test_the_supervisor_may_be_placed_in_a_region_only_when_there_is_one():
    with pytest.raises(BadInput, match="places '__supervisor__', but the application has no supervisor"):
        psim(str(APPS_DIR / "ring_v2.xml"), rmap={"__supervisor__": 1}, options={"region": 0})
    with pytest.raises(BadInput, match="the supervisor's region must be an integer"):
        psim(app("where"), rmap={"__supervisor__": "one"}, options={"region": 0})


def test_one_region_run_has_its_supervisor():
    result = psim(app("one_region", receive="RTSREPLY();"), rmap={"a": 0}, options={"region": 0})
    assert result["status"] == "idle"
    assert result["states"]["a"] == {"init": 1, "sent": 1, "heard": 1}, result["states"]


def test_a_one_region_run_ticks_as_a_whole_one():
    app = str(APPS_DIR / "sup_quirks_v4.xml")
    whole, one = psim(app), psim(app, rmap={"d0": 0}, options={"region": 0})
    assert sup_log(one) == sup_log(whole) == [f"IDLE {i}" for i in range(1, 14)]
