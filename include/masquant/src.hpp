// src.hpp: the explicit instantiations of masquant's heavy function templates — calibrate(), its
// stages, the smoothing solvers' float model and the compensation — for the one translation
// unit of a MASQUANT_SEPARATE_COMPILATION build (with the macro defined, the headers declare
// them `extern template`; include this header in exactly one .cpp file of the program).
// Without the macro it is harmless: the same definitions, instantiated in that file.
//
// MASQUANT_SRC_PART, when defined to 1..4, selects one part (and includes only the headers it
// needs), so that a build can compile the four as translation units in parallel; masquant's own
// build does (src/*.cpp).
#pragma once

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 1
// The exact SVD path: Eigen::BDCSVD alone is about a third of the compile time.
#include <masquant/linalg/compensation.hpp>
template masquant::detail::thin_svd masquant::detail::exact_thin_svd<void>(const Eigen::MatrixXd&);
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 2
// Whitening and the randomized SVD: the rest of compute_compensation().
#include <masquant/linalg/compensation.hpp>
template masquant::compensation masquant::detail::compute_compensation_impl<void>(
    const Eigen::Ref<const Eigen::MatrixXd>&, const Eigen::Ref<const Eigen::MatrixXd>&,
    const masquant::rank_policy&, const masquant::whitening_options&, const masquant::svd_options&);
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 3
// The smoothing solvers' fake-quant model (the α search and learned MAS).
#include <masquant/smooth/detail/fake_quant_model.hpp>
template class masquant::detail::fake_quant_model<float>;
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 4
// The stages and the pipeline; the report's deployable quantized_linear.
#include <masquant/calibrate/calibrate.hpp>
template masquant::calibration_statistics masquant::collect_statistics<void>(
    const masquant::calibration_problem&);
template masquant::smoothing_stage masquant::initial_factors<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&);
template masquant::learning_stage masquant::learn_factors<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    const masquant::smoothing_stage&);
template masquant::compensation_stage masquant::compensate<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    const masquant::smoothing_factors&, const masquant::quantized_matrix&);
template std::vector<masquant::modality_scores> masquant::evaluate_report<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    const masquant::quantized_linear_params&, const std::vector<float>&);
template masquant::calibration_result masquant::calibrate<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    masquant::smoothing_stage, masquant::learning_stage);
template masquant::calibration_result masquant::calibrate<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&);
template masquant::calibration_result masquant::calibrate<void>(masquant::matrix_view<const float>,
                                                                masquant::vector_view<const float>,
                                                                const masquant::modality_inputs&,
                                                                const masquant::calibration_config&,
                                                                std::vector<std::string>);
template masquant::calibration_result masquant::calibrate<void>(masquant::matrix_view<const float>,
                                                                masquant::vector_view<const float>,
                                                                const masquant::modality_stats&,
                                                                const masquant::calibration_config&,
                                                                std::vector<std::string>,
                                                                const masquant::modality_inputs&);
template masquant::calibration_result masquant::calibrate<void>(
    masquant::matrix_view<const float>, masquant::vector_view<const float>,
    masquant::matrix_view<const float>, masquant::vector_view<const masquant::modality_id>,
    const masquant::calibration_config&, std::vector<std::string>);
#endif
