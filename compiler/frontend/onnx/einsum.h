// The importer's Einsum lowering: the equations exporters write for encoders (attention's
// "bhqd,bhkd->bhqk" and "bhqk,bhkd->bhqd", "bqhd,bkhd->bhqk", "...ij,...jk->...ik", projections
// "bsh,hd->bsd", rotary tables' outer product "i,j->ij", transposes and sums) become the ops the
// passes already know, so attention and Dense fusions see them like any MatMul.
#pragma once

#include "compiler/ir/graph.h"

namespace kiln::frontend {

// Rewrites every Einsum of g (shapes inferred) with one or two inputs and no label repeated within
// a term into Transpose / Unsqueeze / ReduceSum / MatMul / Mul / Squeeze nodes; the last of them
// writes the Einsum's output value. Another equation is an error naming the node and the
// equation, unless all its inputs are constants (constant folding evaluates it).
Status lower_einsums(ir::Graph& g);

}  // namespace kiln::frontend
