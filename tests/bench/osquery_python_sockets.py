#!/usr/bin/env python3
"""The baseline of thrift_rows.py: an osquery-python extension serving `launchwatch_sockets`.

Written the normal osquery-python way (a registered `osquery.TablePlugin`, served by
`osquery.start_extension`, so the official bindings' pure-Python TBinaryProtocol and
TSimpleServer). Its rows are the ones launchwatch answered, read from the JSON file named by
$BENCH_ROWS ({"columns": [{"name", "type"}], "rows": [{column: value}]}): the same columns and
values on the wire. `generate` hands back that list as it is, so the baseline pays nothing to
produce rows, only osquery-python's own cost of serving them.

Started as osqueryd starts an extension: `osquery_python_sockets.py --socket PATH --timeout S
--interval S`.
"""

import json
import os

import osquery

with open(os.environ["BENCH_ROWS"]) as f:
    TABLE = json.load(f)


@osquery.register_plugin
class LaunchwatchSockets(osquery.TablePlugin):
    def name(self):
        return "launchwatch_sockets"

    def columns(self):
        return [osquery.TableColumn(name=c["name"], type=c["type"]) for c in TABLE["columns"]]

    def generate(self, context):
        return TABLE["rows"]


if __name__ == "__main__":
    osquery.start_extension(name="osquery_python_sockets", version="1.0.0")
