"""What the demo checked: each step, whether it held, and what it answered."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console

console = Console()


@dataclass
class Check:
    step: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def check(self, step: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(step, ok, detail))
        mark = "[green]✔[/green]" if ok else "[red]✘[/red]"
        console.print(f"  {mark} {step}: [dim]{detail}[/dim]")
        return ok
