"""
Where an MLP's dropout sits: GPT-2 drops out the MLP's *output*, after c_proj. Eval mode, where every other check
runs, turns dropout off and hides its place; so this check runs the student's MLP and the reference in training
mode with the same random seed, and names a place only when the student's output is exactly the reference's with
its dropout moved there (block.py calls it once the eval-mode outputs are right).

    from mingpt.exercises.mlp_dropout import dropout_placement
    problem = dropout_placement("MLP", student, ref, x)
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import CheckResult, close, fail, fmt

__all__ = ["dropout_placement", "DROPOUT_PLACES"]


DROPOUT_PLACES = [  # (where, the MLP in training mode with its dropout there: f(ref, x))
    ("on the MLP's input", lambda r, x: r.c_proj(r.gelu(r.c_fc(r.dropout(x))))),
    ("on the hidden units, before c_proj", lambda r, x: r.c_proj(r.dropout(r.gelu(r.c_fc(x))))),
    ("between c_fc and the activation", lambda r, x: r.c_proj(r.gelu(r.dropout(r.c_fc(x))))),
]


def dropout_placement(exercise, student, ref, x, seed=1234) -> CheckResult | None:
    """In eval mode dropout is invisible, so compare in training mode with the same random seed: named only when the
    student's output is exactly the reference's with its dropout moved elsewhere. Any other training-mode output
    (a dropout drawing its random numbers differently, say) is not judged: it may be right."""
    try:
        with torch.no_grad():
            student.train(), ref.train()
            torch.manual_seed(seed)
            out = student(x)
            for where, f in DROPOUT_PLACES:
                torch.manual_seed(seed)
                if close(out, f(ref, x)):
                    torch.manual_seed(seed)
                    if not close(out, ref(x)):
                        return fail(exercise, "dropout in the wrong place", "GPT-2's MLP drops out its *output* "
                                    f"(after c_proj); yours applies the dropout {where}. Eval mode hides it; "
                                    "training does not.", f"x of shape {tuple(x.shape)}, training mode, "
                                    f"torch.manual_seed({seed}): yours {fmt(out[0, 0])}, expected {fmt(ref(x)[0, 0])}",
                                    "self.dropout(self.c_proj(...)), last")
    except Exception:
        return None  # a training-mode forward that fails here is not what this check is about
    finally:
        student.eval(), ref.eval()
    return None
