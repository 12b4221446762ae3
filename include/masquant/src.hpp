// src.hpp: the explicit instantiations of masquant's heavy function templates — calibrate(), its
// stages, the smoothing solvers' float model and the compensation — for the one translation
// unit of a MASQUANT_SEPARATE_COMPILATION build (with the macro defined, the headers declare
// them `extern template`; include this header in exactly one .cpp file of the program).
// Without the macro it is harmless: the same definitions, instantiated in that file.
//
// MASQUANT_SRC_PART, when defined to 1..5, selects one part, so that a build can compile the
// parts as five translation units in parallel (masquant's own build does: src/*.cpp).
#pragma once

#include <masquant/calibrate/calibrate.hpp>

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 1
// The exact SVD path: Eigen::BDCSVD alone is about a third of the whole.
template masquant::detail::thin_svd masquant::detail::exact_thin_svd<void>(const Eigen::MatrixXd&);
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 2
// Whitening, the randomized SVD and the compensation stage.
template masquant::compensation masquant::detail::compute_compensation_impl<void>(
    const Eigen::Ref<const Eigen::MatrixXd>&, const Eigen::Ref<const Eigen::MatrixXd>&,
    const masquant::rank_policy&, const masquant::whitening_options&, const masquant::svd_options&);
template masquant::compensation_stage masquant::compensate<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    const masquant::smoothing_factors&, const masquant::quantized_matrix&);
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 3
// The smoothing solvers' fake-quant model and the smoothing stages.
template class masquant::detail::fake_quant_model<float>;
template masquant::smoothing_stage masquant::initial_factors<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&);
template masquant::learning_stage masquant::learn_factors<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    const masquant::smoothing_stage&);
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 4
// The report: the deployable quantized_linear and the float reference products.
template std::vector<masquant::modality_scores> masquant::evaluate_report<void>(
    const masquant::calibration_problem&, const masquant::calibration_statistics&,
    const masquant::quantized_linear_params&, const std::vector<float>&);
#endif

#if !defined(MASQUANT_SRC_PART) || MASQUANT_SRC_PART == 5
// The statistics stage and the pipeline.
template masquant::calibration_statistics masquant::collect_statistics<void>(
    const masquant::calibration_problem&);
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
template masquant::calibration_result masquant::calibrate<void>(
    masquant::matrix_view<const float>, masquant::vector_view<const float>,
    masquant::matrix_view<const float>, masquant::vector_view<const masquant::modality_id>,
    const masquant::calibration_config&, std::vector<std::string>);
#endif
