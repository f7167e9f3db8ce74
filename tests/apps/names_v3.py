"""Names in handler scope, default and cTypeName'd C type names, message
defaults in a fresh OnSend message, edge property/state defaults, graph
property defaults (attribute and <Default>), `return 0;` in OnInit,
handler_checkpoint, *sendEdgeIndex, and handler_exit letting the current
handler finish.

Outputs in declaration order o0 (index 0), o1 (1); inputs i0 (0), i1 (1),
i2 (2), declared interleaved with the outputs.
Sizes: nm_properties_t 4+4 = 8, nm_a_message_t 1+4+2 = 7, b_msg_t 3,
nm_dev_properties_t 1, nm_dev_state_t 116 (11*4 + 5*4 + 1 + 4 + 4 + 1 + 4
+ 2*4 + 2*2 + 2*2 + 4 + 3 + 3*4 + 2 + 1).
Messages to n1: a(seq 0: x 11, y 7) and a(seq 1: x 11, y -2 by default) on
both i0 and i2, b(arr [1, 20, 3]) on i1: 5 deliveries; the fifth calls
handler_exit(4) and then sets after_exit.
"""

NAMES = {"rts_flag_o1": 2, "rts_index_o1": 1, "q_flag_o1": 2, "q_index_o0": 0,
         "out_flag_o1": 2, "out_index_o1": 1, "in_index_i1": 1, "in_index_i2": 2,
         "in_count": 3, "out_count": 2, "rtc": 1 << 31,
         "sizes": [8, 7, 3, 1, 116], "same_types": 1, "gh": -9, "gg": 3}


def check_names(result):
    for dev in ("n0", "n1"):
        s = result["states"][dev]
        for field, value in NAMES.items():
            got = list(s[field]) if isinstance(value, list) else s[field]
            assert got == value, (dev, field, got, value)


def check_message_defaults(result):
    s = result["states"]["n1"]
    assert list(s["i0_x"]) == [11, 11], s["i0_x"]
    assert list(s["i0_y"]) == [7, -2], s["i0_y"]
    assert list(s["i2_y"]) == [7, -2], s["i2_y"]
    assert list(s["b_arr"]) == [1, 20, 3], s["b_arr"]


def check_edge_defaults(result):
    s = result["states"]["n1"]
    assert s["edge_cnt"] == 102, s["edge_cnt"]       # default 100, two messages
    assert s["tagp"] == 9, s["tagp"]
    assert list(s["pin_sizes"]) == [7, 2, 4], s["pin_sizes"]


def check_exit(result):
    assert result["status"] == "exit", (result["status"], result.get("error"))
    assert result["metrics"]["Exit code"] == 4, result["metrics"]
    assert result["metrics"]["Delivered messages"] == 5, result["metrics"]
    s = result["states"]
    assert s["n1"]["got"] == 5
    assert s["n1"]["after_exit"] == 1      # the handler ran to its end
    assert s["n0"]["sent"] == 3
