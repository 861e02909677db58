"""keepwarm CLI commands: completion (shell completion scripts) and man (the manual page).

Both are generated from the CLI itself, so they list every command and option there is.
"""

from __future__ import annotations

import re
from datetime import date

import click
from click.shell_completion import get_completion_class

from keepwarm.daemon.commands.base import UserError, cli

__all__ = ["cli", "man_page"]

SHELLS = ("bash", "zsh", "fish")
INSTALL = {
    "bash": "keepwarm completion bash > ~/.local/share/bash-completion/completions/keepwarm",
    "zsh": "keepwarm completion zsh > ~/.zfunc/_keepwarm  # with fpath+=(~/.zfunc) before compinit",
    "fish": "keepwarm completion fish > ~/.config/fish/completions/keepwarm.fish",
}


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, account names and people.

    Install it once, for example:
    'keepwarm completion bash > ~/.local/share/bash-completion/completions/keepwarm'
    (zsh: into a folder on $fpath as _keepwarm; fish: ~/.config/fish/completions/keepwarm.fish).
    """
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click knows all three
        raise UserError(f"no completion for {shell}")
    click.echo(cls(cli, {}, "keepwarm", "_KEEPWARM_COMPLETE").source())


@cli.command()
def man() -> None:
    """Print the manual page (roff), generated from the commands' own help.

    Install it with 'mkdir -p ~/.local/share/man/man1 && keepwarm man >
    ~/.local/share/man/man1/keepwarm.1', then 'man keepwarm'.
    """
    click.echo(man_page(), nl=False)


# -- the man page ----------------------------------------------------------------------------------
def roff(text: str) -> str:
    """Text safe in a roff paragraph: backslashes escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + ln) if ln[:1] in (".", "'") else ln for ln in text.splitlines())


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
        else:
            out.append((full, cmd))
    return out


def _paragraphs(help_text: str) -> list[str]:
    text = re.sub(r"[ \t]+", " ", help_text.replace("\b", "")).strip()
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _options(ctx: click.Context, cmd: click.Command) -> list[str]:
    lines: list[str] = []
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option):
            continue  # arguments are in the usage line
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        lines += [".TP", f"\\fB{roff(names)}\\fR", roff(" ".join(help_text.split()) or "-")]
    return lines


def man_page() -> str:
    """keepwarm(1) in roff, from the CLI's commands, arguments, options and help texts."""
    root = click.Context(cli, info_name="keepwarm")
    lines = [
        f'.TH KEEPWARM 1 "{date.today():%Y-%m-%d}" "keepwarm" "User Commands"',
        ".SH NAME",
        "keepwarm \\- keeps your professional relationships warm",
        ".SH SYNOPSIS",
        "\\fBkeepwarm\\fR [\\fB\\-\\-config\\fR \\fIPATH\\fR] [\\fB\\-v\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
    ]
    for p in _paragraphs(cli.help or ""):
        lines += [".PP", roff(p)]
    lines += [".SH GLOBAL OPTIONS", *_options(root, cli), ".SH COMMANDS"]
    for name, cmd in _commands(cli):
        parent = root
        for part in name.split()[:-1]:
            parent = click.Context(cli.commands[part], info_name=part, parent=parent)
        ctx = click.Context(cmd, info_name=name.split()[-1], parent=parent)
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        lines += [".SS " + roff(f"keepwarm {name} {usage}".strip())]
        for p in _paragraphs(cmd.help or ""):
            lines += [".PP", roff(p)]
        opts = _options(ctx, cmd)
        if opts:
            lines += [".RS", *opts, ".RE"]
    lines += [
        ".SH FILES",
        ".TP",
        "\\fI~/.config/keepwarm/config.toml\\fR",
        "The configuration (\\fBkeepwarm init\\fR writes it; \\fBkeepwarm init \\-\\-example\\fR"
        " prints every option).",
        ".TP",
        "\\fI~/.local/state/keepwarm/keepwarm.db\\fR",
        "The history database, its digest outbox and action key (mode 0600).",
        ".SH ENVIRONMENT",
        ".TP",
        "\\fBKEEPWARM_CONFIG\\fR",
        "The config file, when \\fB\\-\\-config\\fR is not given.",
        ".TP",
        "\\fBXDG_CONFIG_HOME\\fR, \\fBXDG_STATE_HOME\\fR, \\fBSTATE_DIRECTORY\\fR",
        "Where the config and the state live.",
        ".SH EXIT STATUS",
        "0 success; 1 something failed (a source, the network); 2 the input or the config is"
        " wrong; 130 interrupted.",
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); shell completion: \\fBkeepwarm completion\\fR.",
    ]
    return "\n".join(lines) + "\n"
