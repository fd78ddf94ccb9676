"""Run the chart's Argo CD Lua scripts (health check, resource actions) as Argo CD does:
Lua 5.1 (lupa) in a sandbox with only base functions, ``table`` and a safe ``os``. Used by
tests/unit/test_argocd_lua.py and by integration tests that judge a real object's health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51  # dev dependency; a missing lupa must fail, not skip

ROOT = Path(__file__).resolve().parents[1]
LUA_DIR = ROOT / "charts" / "tierguard" / "argocd"
NOW = 1_790_000_000

_RUNNER = """
function(src, obj, now)
  local safe_os = {time = function() return now end, date = os.date}
  local env = {
    ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring,
    tonumber = tonumber, error = error, pcall = pcall, select = select, unpack = unpack,
    assert = assert, table = table, os = safe_os, obj = obj,
  }
  local chunk, err = loadstring(src, "=script")
  if chunk == nil then error(err) end
  setfenv(chunk, env)
  return chunk()
end
"""


class Lua:
    """A Lua 5.1 runtime with conversions between Python JSON values and Lua tables."""

    def __init__(self) -> None:
        self.rt = lua51.LuaRuntime(unpack_returned_tuples=True)
        self._run = self.rt.eval(_RUNNER)

    def to_lua(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self.rt.table_from({k: self.to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return self.rt.table_from([self.to_lua(v) for v in value])
        return value

    def from_lua(self, value: Any) -> Any:
        if lua51.lua_type(value) != "table":
            return value
        items = dict(value.items())
        if (
            items
            and all(isinstance(k, int) for k in items)
            and set(items) == set(range(1, len(items) + 1))
        ):
            return [self.from_lua(items[i]) for i in range(1, len(items) + 1)]
        return {k: self.from_lua(v) for k, v in items.items()}

    def run(self, path: Path, obj: dict[str, Any]) -> Any:
        return self.from_lua(self._run(path.read_text(), self.to_lua(obj), NOW))


def argocd_health(obj: dict[str, Any]) -> dict[str, Any]:
    """The chart's health.lua on one RoutingPolicy object: ``{"status", "message"}``."""
    out: dict[str, Any] = Lua().run(LUA_DIR / "health.lua", obj)
    return out
