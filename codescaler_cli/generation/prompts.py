"""Generator prompts: the LiveCodeBench-style user turn the CodeScaler reward model was trained on.

The problem, then a "### Format:" section with a Python fence (empty, or the starter code), then
"### Answer: (use the provided format with backticks)". A custom template replaces it: `{question}` and
`{starter_code}` in the template are replaced (plain text substitution, so braces in code need no escaping).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

FORMAT_WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose "
                       "your code within delimiters.")
FORMAT_WITHOUT_STARTER = ("Read the inputs from stdin, solve the problem and write the answer to stdout (do not "
                          "directly test on the sample inputs). Enclose your code within delimiters as follows. "
                          "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
                          "writes output to STDOUT.")

DEFAULT_TEMPLATE = "{question}\n\n### Format: {format}\n```python\n{starter_code}\n```\n\n### Answer: (use the provided format with backticks)\n"


def build_prompt(question: str, starter_code: str | None = None, template: str | None = None) -> str:
    """The user turn for one problem."""
    starter = (starter_code or "").strip("\n")
    if template is None:
        template = DEFAULT_TEMPLATE
        fmt = FORMAT_WITH_STARTER if starter else FORMAT_WITHOUT_STARTER
        return (template.replace("{format}", fmt).replace("{starter_code}", starter)
                .replace("{question}", question.strip("\n")))
    return template.replace("{starter_code}", starter).replace("{question}", question)


def load_template(path: Path) -> str:
    """Read a prompt template; it must mention {question}."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, None, "no such file", "check the --prompt-template path") from None
    except UnicodeDecodeError:
        raise InputError(source, None, "not valid UTF-8") from None
    except OSError as exc:
        raise InputError(source, None, f"cannot read: {exc.strerror or exc}") from None
    if "{question}" not in text:
        raise InputError(source, None, "the template never mentions {question}",
                         "put {question} where the problem goes (and optionally {starter_code})")
    return text


def chat_messages(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    """The generator's conversation: an optional system turn, then the prompt as the user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages
