// masquant.hpp: umbrella header; includes every public masquant header except the optional io
// component (include <masquant/io/...> for safetensors, which needs nlohmann_json).
#pragma once

#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/gemm/isa.hpp>
#include <masquant/gemm/packed_weights.hpp>
#include <masquant/gemm/quantized_activations.hpp>
#include <masquant/gemm/reference.hpp>
#include <masquant/layer/linear_params.hpp>
#include <masquant/layer/linear_workspace.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/parallel.hpp>
#include <masquant/quant/fake_quant.hpp>
#include <masquant/quant/int4.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/quant/reference.hpp>
#include <masquant/quant/row.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/smooth/alpha_search.hpp>
#include <masquant/smooth/mas.hpp>
#include <masquant/smooth/objective.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <masquant/tensor/convert.hpp>
#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>
#include <masquant/version.hpp>
