package console

import (
	"slices"
	"sort"

	"github.com/flowgate/flowgate/web"
)

// fillReview fills the review step's page: the connector in plain words,
// and every error that stops the save, each linked to the step that shows
// its field. Without errors of a failed save on the page, the errors are
// the connector model's.
//
// conflicts are the draft's conflicts with other connectors, by field,
// for a review without a failed save's errors: they stop the save as
// well, and each links to the step that owns its field.
func fillReview(pg *web.WizardPage, conflicts map[string]string) {
	spec := specFromForm(pg.Form)
	modelErrs := spec.Normalize() // also normalizes spec, as the review shows it
	errs := pg.Errors
	if errs == nil {
		errs = web.Errors(modelErrs)
		for field, msg := range conflicts {
			if !errs.Has(field) {
				errs[field] = msg
			}
		}
	}
	errs = web.Errors(inWords(errs))
	pg.Review = describe(spec, pg.Form.Enabled, 0, nil)
	pg.ReviewErrors = reviewErrors(pg.Form, errs)
	pg.SaveAllowed = len(errs) == 0 && pg.FormError == "" && pg.Newer == nil
	pg.Errors = errs
}

// reviewErrors lists errs in the order of the steps that show them.
func reviewErrors(f web.WizardForm, errs web.Errors) []web.ReviewError {
	out := make([]web.ReviewError, 0, len(errs))
	for field, msg := range errs {
		step := fieldStep(f, field)
		out = append(out, web.ReviewError{Message: msg, Step: step.number, Label: step.label})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Step != out[j].Step {
			return out[i].Step < out[j].Step
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// fieldStep is the first step of the scenario's steps that shows field.
// A field none shows, such as one a store conflict names, goes to the
// Name step.
func fieldStep(f web.WizardForm, field string) wizardStep {
	for _, s := range steps(f) {
		if slices.Contains(s.shownFields(f), field) {
			return s
		}
	}
	return nameStep
}
