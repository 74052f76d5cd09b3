package console

import "testing"

// Every direction's list runs from the scenario to the review in rising
// step numbers, and every step in it has a label and a view, and every
// step before the review fields to read and show errors on.
func TestWizardStepLists(t *testing.T) {
	lists := map[string][]wizardStep{"inbound": inboundSteps, "outbound": outboundSteps, "undecided": undecidedSteps}
	for name, list := range lists {
		if first, last := list[0], list[len(list)-1]; first.number != scenarioStep.number || last.number != reviewStep.number {
			t.Errorf("%s steps run from %d to %d, want the scenario to the review", name, first.number, last.number)
		}
		for i, s := range list {
			if i > 0 && s.number <= list[i-1].number {
				t.Errorf("%s step %d follows step %d", name, s.number, list[i-1].number)
			}
			if s.label == "" || s.view == nil {
				t.Errorf("%s step %d has no label or no view", name, s.number)
			}
			if i < len(list)-1 && (s.read == nil || s.fields == nil) {
				t.Errorf("%s step %d reads no fields or shows no errors", name, s.number)
			}
		}
	}
}
